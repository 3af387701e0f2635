package org.cellcount;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.awt.image.BufferedImage;
import java.io.File;
import java.io.IOException;
import java.lang.reflect.Field;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/**
 * Smoke tests of the bindings against the real library and the fixture model (selftest method): status to
 * exception mapping, cancellation, the version/ABI check, the shim's own size checks, callbacks. Numerics
 * are the C++ tests' business; here only consistency (same pixels in any dtype give the same count).
 */
public class CellCountTest {
  private static String modelDir;
  private static String dataDir;
  private static CellCountModel model;
  private static PixelData image;

  /** Scratch folders of the tests, deleted after each test (nothing is left in the system temp folder). */
  @Rule public final TemporaryFolder tmp = new TemporaryFolder();

  private static String property(String key) {
    String v = System.getProperty(key);
    if (v == null || v.isEmpty()) throw new IllegalStateException("set -D" + key + " (scripts/test-java.sh does)");
    return v;
  }

  @BeforeClass
  public static void setUp() throws Exception {
    modelDir = property("cellcount.test.model");
    dataDir = property("cellcount.test.data");
    assertTrue("fixture model missing: " + modelDir + " (scripts/test-java.sh makes it)",
        new File(modelDir, "model.json").isFile());
    model = CellCountModel.load(modelDir);
    image = grey(new File(dataDir, "images/cells_00001.png"));
  }

  @AfterClass
  public static void tearDown() {
    if (model != null) model.close();
  }

  static PixelData grey(File png) throws IOException {
    BufferedImage bi = ImageIO.read(png);
    assertNotNull("cannot read " + png, bi);
    int w = bi.getWidth(), h = bi.getHeight();
    byte[] px = new byte[w * h];
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) px[y * w + x] = (byte) bi.getRaster().getSample(x, y, 0);
    return PixelData.ofBytes(px, w, h, 1);
  }

  private static CellCountException expectError(int status, ThrowingRunnable r) {
    try {
      r.run();
    } catch (CellCountException e) {
      assertEquals("status of: " + e, status, e.status());
      assertFalse("message must say what went wrong", e.getMessage().isEmpty());
      return e;
    } catch (Exception e) {
      throw new AssertionError("expected CellCountException, got " + e, e);
    }
    fail("expected a CellCountException with status " + status);
    return null;
  }

  interface ThrowingRunnable {
    void run() throws Exception;
  }

  @Test
  public void versionAndAbiMatchTheHeader() throws Exception {
    String header = new String(Files.readAllBytes(new File(property("cellcount.header")).toPath()), "UTF-8");
    Matcher abi = Pattern.compile("#define CELLCOUNT_ABI_VERSION (\\d+)").matcher(header);
    assertTrue(abi.find());
    assertEquals(Integer.parseInt(abi.group(1)), CellCount.ABI_VERSION);
    assertEquals(CellCount.ABI_VERSION, CellCount.abiVersion());
    Matcher v = Pattern.compile("#define CELLCOUNT_VERSION_STRING \"([^\"]+)\"").matcher(header);
    assertTrue(v.find());
    assertEquals(v.group(1), CellCount.version());
    assertTrue(CellCount.nativeLibraryPath().endsWith(System.mapLibraryName("cellcount_jni")));
  }

  @Test
  public void statusConstantsMatchTheHeader() throws Exception {
    String header = new String(Files.readAllBytes(new File(property("cellcount.header")).toPath()), "UTF-8");
    int from = header.indexOf("typedef enum cellcount_status {");
    int to = header.indexOf("} cellcount_status;", from);
    assertTrue("status enum found in the header", from >= 0 && to > from);
    Matcher m = Pattern.compile("CELLCOUNT_([A-Z_]+) = (\\d+)").matcher(header.substring(from, to));
    int n = 0;
    while (m.find()) {
      if (m.group(1).equals("OK")) continue;
      Field f = CellCountException.class.getField(m.group(1));
      assertEquals(m.group(1), Integer.parseInt(m.group(2)), f.getInt(null));
      assertEquals("CELLCOUNT_" + m.group(1), CellCount.statusName(f.getInt(null)));
      n++;
    }
    assertEquals("every status of the header has a constant and back", 11, n);
  }

  @Test
  public void libraryInfoListsMethods() throws Exception {
    Map<String, Object> info = CellCount.libraryInfo();
    assertEquals((long) CellCount.ABI_VERSION, info.get("abi"));
    List<?> methods = (List<?>) info.get("methods");
    List<Object> ids = new ArrayList<>();
    for (Object o : methods) ids.add(((Map<?, ?>) o).get("id"));
    assertTrue(ids.toString(), ids.contains("selftest"));
  }

  @Test
  public void modelInfoComesFromTheLibrary() {
    assertEquals("selftest", model.method());
    assertFalse(model.needsExemplars());
    assertTrue(model.isFixture());
    assertEquals(1, model.inputChannels());
    assertEquals(List.of("cell"), model.classes());
  }

  @Test
  public void wrongModelFolderIsAnIoError() {
    CellCountException e = expectError(CellCountException.ERR_IO, () -> CellCountModel.load("/nonexistent/model"));
    assertTrue(e.getMessage(), e.getMessage().contains("/nonexistent/model"));
    assertFalse(e.isCancelled());
    assertEquals("CELLCOUNT_ERR_IO", e.statusName());
  }

  @Test
  public void corruptWeightsAreAModelFormatError() throws Exception {
    Path dir = tmp.newFolder("corrupt").toPath();
    Files.copy(new File(modelDir, "model.json").toPath(), dir.resolve("model.json"));
    Files.copy(new File(modelDir, "weights.pt").toPath(), dir.resolve("weights.pt"));
    byte[] w = Files.readAllBytes(dir.resolve("weights.pt"));
    w[w.length / 2] ^= 0x55;
    Files.write(dir.resolve("weights.pt"), w);
    expectError(CellCountException.ERR_MODEL_FORMAT, () -> CellCountModel.load(dir.toString()));
  }

  @Test
  public void sameCountForEveryPixelType() throws Exception {
    Prediction u8 = model.predict(image, null, null, null, null);
    byte[] b = (byte[]) image.array;
    short[] s = new short[b.length];
    float[] f = new float[b.length];
    for (int i = 0; i < b.length; i++) {
      s[i] = (short) (b[i] & 0xff);
      f[i] = b[i] & 0xff;
    }
    Prediction u16 = model.predict(PixelData.ofShorts(s, image.width, image.height, 1), null, null, null, null);
    Prediction f32 = model.predict(PixelData.ofFloats(f, image.width, image.height, 1), null, null, null, null);
    assertTrue("fixture counts something", u8.count > 0.5);
    assertEquals(u8.count, u16.count, 1e-4 * u8.count);
    assertEquals(u8.count, f32.count, 1e-4 * u8.count);
    assertArrayEquals(u8.xy, f32.xy, 1e-3f);
    assertEquals(1, u8.classCounts.length);
    assertEquals(u8.count, u8.classCounts[0], 1e-9);
    assertEquals("cpu", u8.device);
    assertEquals("fp32", u8.precision);
    for (int k = 0; k < u8.numPoints(); k++) {
      assertTrue(u8.xy[2 * k] >= 0 && u8.xy[2 * k] < image.width);
      assertTrue(u8.xy[2 * k + 1] >= 0 && u8.xy[2 * k + 1] < image.height);
    }
    assertNotNull("density is kept by default", u8.density);
    assertEquals(image.width, u8.density.width);
    double sum = 0;
    for (float v : u8.density.data) sum += v;
    assertEquals(u8.count, sum, 1e-3 * u8.count);
  }

  @Test
  public void paramsDefaultsComeFromTheLibrary() throws Exception {
    PredictParams p = PredictParams.defaults();
    assertEquals("auto", p.device);
    assertEquals("auto", p.precision);  // the library's default (issue 25): bf16 on CUDA or AMX, else fp32
    assertEquals(0, p.tileSize);
    assertEquals(-1, p.tileOverlap);
    assertTrue(Float.isNaN(p.peakThreshold));
    assertTrue(p.wantDensity);
    p.wantDensity = false;
    assertNull(model.predict(image, null, null, p, null).density);
  }

  @Test
  public void measurementsAndRelativeThresholdAreTheLibrarys() throws Exception {
    // issue 21: counted area and cells per unit2 for the image's calibration, per-point intensity, no labels
    PredictParams p = PredictParams.defaults();
    p.pixelWidth = 0.5;
    p.pixelHeight = 0.25;
    p.unit = "um";
    Prediction r = model.predict(image, null, null, p, null);
    double area = image.width * (double) image.height * 0.125;
    assertEquals(area, r.measurement("area"), 1e-9);
    assertEquals(r.count / area, r.measurement("cells_per_unit2"), 1e-12);
    assertTrue(Double.isNaN(r.diameter()));  // the fixture model states no cell size
    assertNull(r.diameterSource());
    assertEquals(r.numPoints(), r.intensities().length);
    for (double v : r.intensities()) assertTrue("intensity " + v, v >= 0 && v <= 255);
    assertNull(r.labels);
    // the model's tuned threshold on the 0-1 scale gives the default points; 1 keeps fewer
    double rel = ((Number) ((java.util.Map<?, ?>) Json.parseObject(model.infoJson()).get("peak_threshold"))
        .get("relative")).doubleValue();
    assertEquals(rel, CellCount.peakThresholdRelative(CellCount.peakThresholdAbsolute(rel)), 1e-12);
    PredictParams q = PredictParams.defaults();
    q.peakThresholdRelative = (float) rel;
    assertEquals(r.numPoints(), model.predict(image, null, null, q, null).numPoints());
    assertNull("the caller's options are left as given", q.optionsJson);
    q.peakThresholdRelative = 1f;
    assertTrue(model.predict(image, null, null, q, null).numPoints() < r.numPoints());
    q.peakThresholdRelative = 2f;
    expectError(CellCountException.ERR_INVALID_ARGUMENT, () -> model.predict(image, null, null, q, null));
  }

  @Test
  public void warningsAreTheMeasurementsMessages() throws Exception {
    // issue 24: one message per entry of the measurements' "warnings", in the library's order; read-only
    Prediction r = model.predict(image, null, null, null, null);
    List<?> found = (List<?>) r.measurements.get("warnings");
    assertEquals(found.size(), r.warnings.size());
    for (int k = 0; k < found.size(); k++) assertEquals(((Map<?, ?>) found.get(k)).get("message"), r.warnings.get(k));
    try {
      r.warnings.add("x");
      fail("warnings must be unmodifiable");
    } catch (UnsupportedOperationException expected) {
      // read-only
    }
    // an empty list where the library checks nothing: the fixture has no "domain" section, and a count and
    // points below 10 (a 4 x 4 region) are not compared (cellcount.h, "Out-of-domain warnings")
    byte[] small = new byte[image.width * image.height];
    for (int y = 0; y < 4; y++)
      for (int x = 0; x < 4; x++) small[y * image.width + x] = 1;
    assertEquals(List.of(), model.predict(image, null, small, null, null).warnings);
  }

  @Test
  public void badParamsAreRefused() throws Exception {
    PredictParams p = PredictParams.defaults();
    p.tileSize = 5;
    expectError(CellCountException.ERR_INVALID_ARGUMENT, () -> model.predict(image, null, null, p, null));
    PredictParams q = PredictParams.defaults();
    q.device = "cuda:7";
    expectError(CellCountException.ERR_DEVICE, () -> model.predict(image, null, null, q, null));
  }

  @Test
  public void cancelGivesCancelledAndKeepsTheModelUsable() throws Exception {
    double before = model.predict(image, null, null, null, null).count;
    AtomicInteger calls = new AtomicInteger();
    CellCountException e = expectError(CellCountException.CANCELLED,
        () -> model.predict(image, null, null, null, (f, stage) -> calls.incrementAndGet() > 0));
    assertTrue(e.isCancelled());
    assertEquals("cancelled at the first callback", 1, calls.get());
    assertEquals(before, model.predict(image, null, null, null, null).count, 0.0);
  }

  @Test
  public void listenerExceptionComesBackAfterTheCall() throws Exception {
    IllegalStateException thrown = new IllegalStateException("from the listener");
    try {
      model.predict(image, null, null, null, (f, s) -> {
        throw thrown;
      });
      fail("expected the listener's exception");
    } catch (IllegalStateException e) {
      assertSame(thrown, e);
    }
    assertTrue(model.predict(image, null, null, null, null).count > 0);
  }

  @Test
  public void progressReportsStages() throws Exception {
    List<String> stages = new ArrayList<>();
    model.predict(image, null, null, null, (f, s) -> {
      assertTrue(f >= 0 && f <= 1);
      stages.add(s);
      return false;
    });
    assertFalse(stages.isEmpty());
  }

  @Test
  public void onePixelImageIsAnError() {
    CellCountException e = expectError(CellCountException.ERR_INVALID_ARGUMENT,
        () -> model.predict(PixelData.ofBytes(new byte[1], 1, 1, 1), null, null, null, null));
    assertTrue(e.getMessage(), e.getMessage().contains("1 x 1"));
  }

  @Test
  public void nanPixelsAreAnError() {
    float[] f = new float[64 * 64];
    f[100] = Float.NaN;
    expectError(CellCountException.ERR_INVALID_ARGUMENT,
        () -> model.predict(PixelData.ofFloats(f, 64, 64, 1), null, null, null, null));
  }

  @Test
  public void wrongChannelsAreAnError() {
    CellCountException e = expectError(CellCountException.ERR_INVALID_ARGUMENT,
        () -> model.predict(PixelData.ofBytes(new byte[64 * 64 * 2], 64, 64, 2), null, null, null, null));
    assertTrue(e.getMessage(), e.getMessage().contains("channel"));
  }

  @Test
  public void theShimChecksArraySizes() throws Exception {
    PredictParams p = PredictParams.defaults();
    // Too short for 64 x 64: checked in C before the library could read past the end.
    expectError(CellCountException.ERR_INVALID_ARGUMENT,
        () -> Native.predict(Native.modelLoad(Native.bytes(modelDir)), new byte[100], PixelData.U8, 64, 64, 1, null,
            null, p, null));
    // dtype and array type disagree.
    expectError(CellCountException.ERR_INVALID_ARGUMENT,
        () -> Native.predict(1, new byte[4096], PixelData.F32, 64, 64, 1, null, null, p, null));
    // Boxes not a multiple of 4, region of the wrong size, closed model.
    long m = Native.modelLoad(Native.bytes(modelDir));
    try {
      expectError(CellCountException.ERR_INVALID_ARGUMENT,
          () -> Native.predict(m, new byte[4096], PixelData.U8, 64, 64, 1, new float[3], null, p, null));
      expectError(CellCountException.ERR_INVALID_ARGUMENT,
          () -> Native.predict(m, new byte[4096], PixelData.U8, 64, 64, 1, null, new byte[10], p, null));
      expectError(CellCountException.ERR_INVALID_ARGUMENT,
          () -> Native.predict(0, new byte[4096], PixelData.U8, 64, 64, 1, null, null, p, null));
    } finally {
      Native.modelFree(m);
    }
    try {
      PixelData.ofBytes(new byte[10], 64, 64, 1);
      fail("PixelData must refuse a short array");
    } catch (IllegalArgumentException expected) {
      // the Java side checks first
    }
  }

  @Test
  public void regionMaskLimitsTheCount() throws Exception {
    byte[] none = new byte[image.width * image.height];
    assertEquals(0.0, model.predict(image, null, none, null, null).count, 1e-6);
    byte[] all = new byte[image.width * image.height];
    java.util.Arrays.fill(all, (byte) 1);
    assertEquals(model.predict(image, null, null, null, null).count, model.predict(image, null, all, null, null).count,
        1e-6);
  }

  @Test
  public void exemplarsForAModelWithoutThemAreRefused() {
    expectError(CellCountException.ERR_INVALID_ARGUMENT,
        () -> model.predict(image, new Box[] {Box.ofRect(2, 2, 8, 8)}, null, null, null));
  }

  @Test
  public void closedModelIsAnErrorAndCloseTwiceIsSafe() throws Exception {
    CellCountModel m = CellCountModel.load(modelDir);
    m.close();
    m.close();
    CellCountException e = expectError(CellCountException.ERR_INVALID_ARGUMENT,
        () -> m.predict(image, null, null, null, null));
    assertTrue(e.getMessage().contains("closed"));
  }

  @Test
  public void twoModelsInTwoThreads() throws Exception {
    double expected = model.predict(image, null, null, null, null).count;
    double[] got = new double[2];
    Exception[] err = new Exception[2];
    Thread[] t = new Thread[2];
    for (int k = 0; k < 2; k++) {
      final int kk = k;
      t[k] = new Thread(() -> {
        try (CellCountModel m = CellCountModel.load(modelDir)) {
          for (int r = 0; r < 3; r++) got[kk] = m.predict(image, null, null, null, null).count;
        } catch (Exception e) {
          err[kk] = e;
        }
      });
      t[k].start();
    }
    for (Thread th : t) th.join();
    for (int k = 0; k < 2; k++) {
      assertNull(String.valueOf(err[k]), err[k]);
      assertEquals(expected, got[k], 1e-9);
    }
  }

  @Test
  public void requestDefaultsAndRequestErrors() throws Exception {
    Map<String, Object> d = Json.parseObject(CellCount.requestDefaults("selftest", "train"));
    assertEquals("selftest", d.get("method"));
    assertTrue(d.containsKey("epochs"));
    expectError(CellCountException.ERR_WRONG_METHOD, () -> CellCount.requestDefaults("no-such-method", "train"));
    expectError(CellCountException.ERR_INVALID_ARGUMENT, () -> CellCount.requestDefaults("selftest", "bake"));
    expectError(CellCountException.ERR_INVALID_ARGUMENT,
        () -> CellCount.train("{\"method\":\"selftest\",\"epochz\":3}", null));
    expectError(CellCountException.ERR_INVALID_ARGUMENT, () -> CellCount.train("{not json", null));
  }

  @Test
  public void trainingCancelsAndEvaluationReports() throws Exception {
    Path out = tmp.newFolder("train").toPath().resolve("model");
    Map<String, Object> req = Json.parseObject(CellCount.requestDefaults("selftest", "train"));
    req.put("dataset", dataDir);
    req.put("out", out.toString());
    req.put("epochs", 50L);
    CellCountException e = expectError(CellCountException.CANCELLED,
        () -> CellCount.train(Json.write(req), (f, s) -> f > 0.0f));
    assertTrue(e.isCancelled());
    assertFalse("a cancelled training leaves no model", Files.exists(out.resolve("weights.pt")));

    Map<String, Object> ev = Json.parseObject(CellCount.requestDefaults("selftest", "evaluate"));
    ev.put("model", modelDir);
    ev.put("dataset", dataDir);
    Map<String, Object> report = Json.parseObject(CellCount.evaluate(Json.write(ev), null));
    assertTrue(report.toString(), report.get("mae") instanceof Number);
  }

  @Test
  public void logListenerReceivesTheLibraryLog() throws Exception {
    List<String> lines = new ArrayList<>();
    CellCount.setLogListener((level, msg) -> {
      synchronized (lines) {
        lines.add(level + " " + msg);
      }
    }, CellCount.LOG_DEBUG);
    try {
      expectError(CellCountException.ERR_IO, () -> CellCountModel.load("/nonexistent/logged"));
    } finally {
      CellCount.setLogListener(null, CellCount.LOG_INFO);
    }
    synchronized (lines) {
      assertTrue(lines.toString(), lines.stream().anyMatch(l -> l.contains("/nonexistent/logged")));
    }
  }

  @Test
  public void jsonRoundTrip() {
    String text = "{\"a\":1,\"b\":[1.5,\"x\\\"y\\u00e9\",true,null],\"c\":{\"d\":-2e-3}}";
    Map<String, Object> m = Json.parseObject(text);
    assertEquals(1L, m.get("a"));
    assertEquals("x\"y\u00e9", ((List<?>) m.get("b")).get(1));
    assertEquals(-2e-3, (Double) ((Map<?, ?>) m.get("c")).get("d"), 0);
    assertEquals(m, Json.parseObject(Json.write(m)));
    try {
      Json.parse("{\"a\":}");
      fail();
    } catch (IllegalArgumentException expected) {
      assertTrue(expected.getMessage().contains("character"));
    }
  }

  // ------------------------------------------------------------ method options as data (ABI 2)

  private static final List<String> TYPES = java.util.Arrays.asList("int", "number", "bool", "string", "choice",
      "path", "int_list", "number_list", "string_list", "object", "json");

  /** The metadata of a kind, checked against the library's own JSON text and its defaults. */
  private static List<Map<String, Object>> checkedOptions(String method, String kind) throws Exception {
    String raw = CellCount.requestOptionsJson(method, kind);
    List<Map<String, Object>> meta = CellCount.requestOptions(method, kind);
    assertEquals("the parsed metadata is the C ABI's JSON", Json.parse(raw), Json.parse(Json.write(meta)));
    Map<String, Object> defaults = Json.parseObject(CellCount.requestDefaults(method, kind));
    List<Object> names = new ArrayList<>();
    for (Map<String, Object> m : meta) {
      String name = (String) m.get("name");
      names.add(name);
      assertTrue(m.toString(), TYPES.contains(m.get("type")));
      assertEquals(name + ": default", defaults.get(name), m.get("default"));
      assertTrue(name + ": doc", m.get("doc") instanceof String);
      Object d = m.get("default");
      if (d instanceof Number) {
        double v = ((Number) d).doubleValue();
        if (m.containsKey("min")) assertTrue(name + " >= min", v >= ((Number) m.get("min")).doubleValue());
        if (m.containsKey("max")) assertTrue(name + " <= max", v <= ((Number) m.get("max")).doubleValue());
      }
      if ("choice".equals(m.get("type"))) assertTrue(name, ((List<?>) m.get("choices")).contains(d));
    }
    assertEquals(method + " " + kind + ": one field per default", new java.util.TreeSet<>(defaults.keySet()),
        new java.util.TreeSet<>(names));
    return meta;
  }

  @Test
  public void optionMetadataRoundTrips() throws Exception {
    assertFalse(checkedOptions("dcl", "train").isEmpty());
    assertFalse(checkedOptions("exemplar", "train").isEmpty());
    List<Map<String, Object>> ex = checkedOptions("exemplar", "predict");
    assertEquals(2, ex.size());
    Map<String, Object> mt = ex.get(0);
    assertEquals("mask_threshold", mt.get("name"));
    assertEquals("localize", ex.get(1).get("name"));
    assertEquals("bool", ex.get(1).get("type"));
    assertEquals("number", mt.get("type"));
    assertEquals(-1.0, ((Number) mt.get("min")).doubleValue(), 0);
    assertEquals(1.0, ((Number) mt.get("max")).doubleValue(), 0);
    assertFalse(((String) mt.get("doc")).isEmpty());
    checkedOptions("", "predict");
    assertTrue(checkedOptions("selftest", "predict").isEmpty());
    expectError(CellCountException.ERR_INVALID_ARGUMENT, () -> CellCount.requestOptions("exemplar", "bake"));
  }

  private static File repoRoot() {
    return new File(property("cellcount.header")).getAbsoluteFile().getParentFile().getParentFile().getParentFile()
        .getParentFile();
  }

  @Test
  public void exportWritesABioImageIoPackageAndNeverOverwrites() throws Exception {
    File model = new File(repoRoot(), "models/dcl-vgg");
    File out = new File(tmp.newFolder("export"), "dcl-vgg.zip");
    Map<String, Object> req = new java.util.LinkedHashMap<>();
    req.put("model", model.getPath());
    req.put("out", out.getPath());
    req.put("format", "bioimageio");
    req.put("size", 64);
    Map<String, Object> rep = Json.parseObject(CellCount.export(Json.write(req)));
    assertEquals("dcl", rep.get("method"));
    assertTrue(out.isFile() && out.length() > 0);
    assertTrue(String.valueOf(rep.get("files")).contains("rdf.yaml"));
    long size = out.length();
    CellCountException e = expectError(CellCountException.ERR_IO, () -> CellCount.export(Json.write(req)));
    assertTrue(e.getMessage(), e.getMessage().contains(out.getName()));
    assertEquals("the existing package is kept", size, out.length());
    expectError(CellCountException.ERR_INVALID_ARGUMENT, () -> CellCount.export("{\"model\": 1}"));
  }

  @Test
  public void predictOptionsAreCheckedByTheLibrary() throws Exception {
    File dir = new File(repoRoot(), "models/exemplar-cells");
    assertTrue("shipped exemplar model missing: " + dir, new File(dir, "model.json").isFile());
    Box[] box = {new Box(10, 10, 20, 20)};
    try (CellCountModel ex = CellCountModel.load(dir.getPath())) {
      PredictParams p = PredictParams.defaults();
      p.options(java.util.Collections.singletonMap("mask_threshold", 2));
      CellCountException e = expectError(CellCountException.ERR_INVALID_ARGUMENT,
          () -> ex.predict(image, box, null, p, null));
      assertTrue(e.getMessage(), e.getMessage().contains("mask_threshold"));
      p.optionsJson = "{\"mask_treshold\": 0.5}";
      e = expectError(CellCountException.ERR_INVALID_ARGUMENT, () -> ex.predict(image, box, null, p, null));
      assertTrue(e.getMessage(), e.getMessage().contains("unknown option") && e.getMessage().contains("mask_treshold"));
      p.optionsJson = "[1]";
      expectError(CellCountException.ERR_INVALID_ARGUMENT, () -> ex.predict(image, box, null, p, null));
    }
    PredictParams q = PredictParams.defaults();
    assertNull("no options by default", q.optionsJson);
    q.optionsJson = "{\"mask_threshold\": 0.5}";  // selftest has no options of its own
    expectError(CellCountException.ERR_INVALID_ARGUMENT, () -> model.predict(image, null, null, q, null));
  }

  @Test
  public void imagesDatasetsSplitAndMetricsThroughTheLibrary() throws Exception {
    List<PixelData> planes = CellCount.readImage(new File(dataDir, "images/cells_00001.png").getPath());
    assertEquals(1, planes.size());
    PixelData f = planes.get(0);
    assertEquals(image.width, f.width);
    byte[] u8 = (byte[]) image.array;
    float[] px = (float[]) f.array;
    for (int i = 0; i < u8.length; i++) assertEquals(u8[i] & 0xff, px[i * f.channels], 0);
    assertEquals(model.predict(image, null, null, null, null).count, model.predict(f, null, null, null, null).count,
        1e-4);
    assertTrue(CellCount.isImageFile("x.tiff"));
    expectError(CellCountException.ERR_IO, () -> CellCount.readImage("/nonexistent/x.png"));

    Map<String, Object> ds = Json.parseObject(CellCount.readDatasetJson(dataDir, null));
    int n = ((List<?>) ds.get("samples")).size();
    assertTrue(n > 0);
    Path out = tmp.getRoot().toPath().resolve("split.csv");
    Map<String, Object> r = Json.parseObject(CellCount.split("{\"dataset\": " + Json.write(dataDir) + ", \"out\": "
        + Json.write(out.toString()) + ", \"ratios\": [2, 1, 1]}"));
    assertEquals((long) n, ((Number) r.get("train")).longValue() + ((Number) r.get("test")).longValue()
        + ((Number) r.get("val")).longValue());

    Map<String, Object> m = Json.parseObject(CellCount.metrics("{\"predicted\": [10, 4], \"truth\": [12, 4]}"));
    assertEquals(1.0, ((Number) m.get("mae")).doubleValue(), 1e-12);
    assertEquals(Math.sqrt(2.0), ((Number) m.get("rmse")).doubleValue(), 1e-12);
    expectError(CellCountException.ERR_INVALID_ARGUMENT, () -> CellCount.metrics("{\"predicted\": [1]}"));
  }
}
