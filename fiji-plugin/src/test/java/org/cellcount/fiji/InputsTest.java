package org.cellcount.fiji;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import ij.ImagePlus;
import ij.ImageStack;
import ij.gui.OvalRoi;
import ij.gui.Roi;
import ij.gui.ShapeRoi;
import ij.process.ByteProcessor;
import ij.process.ColorProcessor;
import ij.process.ShortProcessor;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.cellcount.Box;
import org.cellcount.PixelData;
import org.junit.Test;

/** The plugin's own logic that needs no native library: ROIs to boxes and masks, pixel layout, request
 * fields. (The numerics are checked against the library in the ImageJ acceptance test.) */
public class InputsTest {
  private static ShapeRoi composite(Roi... parts) {
    ShapeRoi s = new ShapeRoi(parts[0]);
    for (int k = 1; k < parts.length; k++) s = s.or(new ShapeRoi(parts[k]));
    return s;
  }

  private static int ones(byte[] m) {
    int n = 0;
    for (byte b : m) n += b;
    return n;
  }

  @Test
  public void compositeSelectionGivesRectanglesAsExemplarsAndTheRestAsRegion() {
    Roi oval = new OvalRoi(40, 40, 30, 20);
    ShapeRoi sel = composite(new Roi(2, 3, 10, 12), new Roi(20, 5, 6, 7), oval);
    List<Box> boxes = Inputs.selectionRectangles(sel);
    assertEquals(2, boxes.size());
    boolean first = false, second = false;
    for (Box b : boxes) {
      first |= b.x0 == 2 && b.y0 == 3 && b.x1 == 12 && b.y1 == 15;
      second |= b.x0 == 20 && b.y0 == 5 && b.x1 == 26 && b.y1 == 12;
    }
    assertTrue(boxes.toString(), first && second);
    Roi region = Inputs.regionOf(sel, true);
    assertEquals(ones(Inputs.mask(oval, 100, 80)), ones(Inputs.mask(region, 100, 80)));
    Roi all = Inputs.regionOf(sel, false);
    assertEquals(120 + 42 + ones(Inputs.mask(oval, 100, 80)), ones(Inputs.mask(all, 100, 80)));
  }

  @Test
  public void singleRectangleIsOneExemplarAndNoRegionWhenItIsTheExemplar() {
    Roi r = new Roi(5, 6, 7, 8);
    assertEquals(1, Inputs.selectionRectangles(r).size());
    assertNull(Inputs.regionOf(r, true));
    assertEquals(56, ones(Inputs.mask(Inputs.regionOf(r, false), 50, 50)));
    assertNull("a line is no region", Inputs.regionOf(new ij.gui.Line(1, 1, 9, 9), false));
    assertTrue(Inputs.selectionRectangles(null).isEmpty());
  }

  @Test
  public void managerRectanglesFollowTheirSlice() {
    Roi any = new Roi(1, 1, 4, 4);
    Roi onTwo = new Roi(10, 10, 4, 4);
    onTwo.setPosition(2);
    Roi oval = new OvalRoi(0, 0, 5, 5);
    Roi[] rois = {any, onTwo, oval};
    assertEquals(1, Inputs.managerRectangles(rois, new Inputs.Position(1, 1, 1, 1)).size());
    assertEquals(2, Inputs.managerRectangles(rois, new Inputs.Position(2, 1, 2, 1)).size());
    Roi hyper = new Roi(3, 3, 4, 4);
    hyper.setPosition(0, 2, 3);
    assertEquals(1, Inputs.managerRectangles(new Roi[] {hyper}, new Inputs.Position(9, 0, 2, 3)).size());
    assertEquals(0, Inputs.managerRectangles(new Roi[] {hyper}, new Inputs.Position(9, 0, 1, 3)).size());
  }

  @Test
  public void rgbBecomesThreeInterleavedChannels() {
    ColorProcessor cp = new ColorProcessor(2, 1);
    cp.set(0, 0, 0x102030);
    cp.set(1, 0, 0xa0b0c0);
    PixelData px = Inputs.pixels(cp, 2, 1);
    assertEquals(3, px.channels);
    assertEquals(PixelData.U8, px.dtype());
  }

  @Test
  public void hyperstackChannelsArePackedWhenTheModelTakesThatMany() {
    ImageStack st = new ImageStack(2, 2);
    for (int k = 0; k < 6; k++) {
      ShortProcessor sp = new ShortProcessor(2, 2);
      sp.set(0, 0, 100 * (k + 1));
      st.addSlice(sp);
    }
    ImagePlus imp = new ImagePlus("h", st);
    imp.setDimensions(3, 1, 2);
    imp.setOpenAsHyperStack(true);
    assertTrue(Inputs.packChannels(imp, 3));
    assertFalse(Inputs.packChannels(imp, 1));
    List<Inputs.Position> all = Inputs.positions(imp, true, true);
    assertEquals(2, all.size());
    assertEquals(4, all.get(1).index);
    PixelData px = Inputs.pixels(imp, all.get(1));
    assertEquals(3, px.channels);
    List<Inputs.Position> one = Inputs.positions(imp, true, false);
    assertEquals(2, one.size());
    assertEquals(1, Inputs.pixels(imp, one.get(0)).channels);
  }

  @Test
  public void positionsOfAStack() {
    ImageStack st = new ImageStack(4, 4);
    for (int k = 0; k < 5; k++) st.addSlice(new ByteProcessor(4, 4));
    ImagePlus imp = new ImagePlus("s", st);
    imp.setSlice(3);
    assertEquals(3, Inputs.positions(imp, false, false).get(0).index);
    List<Inputs.Position> all = Inputs.positions(imp, true, false);
    assertEquals(5, all.size());
    for (int k = 0; k < 5; k++) assertEquals(k + 1, all.get(k).index);
  }

  @Test
  public void requestFieldsParseByTheirDeclaredType() {
    Map<String, Object> epochs = Map.of("name", "epochs", "type", "int", "default", 30L, "min", 1L, "max", 100L);
    Map<String, Object> lr = Map.of("name", "lr", "type", "number", "default", 0.01, "min", 1e-12, "max", 10.0);
    Map<String, Object> levels = Map.of("name", "count_levels", "type", "int_list", "default", List.of(1L), "min", 1L);
    assertEquals(3L, RequestDialog.value(epochs, "3"));
    assertEquals(0.5, (Double) RequestDialog.value(lr, "0.5"), 0);
    assertEquals(List.of(1L, 2L), RequestDialog.value(levels, "[1,2]"));
    try {
      RequestDialog.value(epochs, "3.5");
      fail();
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage(), e.getMessage().startsWith("epochs: expected a whole number"));
    }
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("method", "dcl");
    m.put("dataset", "/a b");
    m.put("epochs", 3L);
    assertEquals("method=dcl dataset=[/a b] epochs=3", RequestDialog.macroOptions(m));
    assertEquals("1.0E-6", RequestDialog.text(1e-6));
  }

  @Test
  public void macroOptionsAreReadByExactKey() {
    Map<String, String> o = RequestDialog.parseOptions("method=selftest restart_epochs=10 epochs=3 dataset=[/a b] flag out=[]");
    assertEquals("10", o.get("restart_epochs"));
    assertEquals("3", o.get("epochs"));
    assertEquals("/a b", o.get("dataset"));
    assertEquals("true", o.get("flag"));
    assertEquals("", o.get("out"));
    assertFalse(o.containsKey("size"));
  }

  @Test
  public void optionalNumbers() {
    assertTrue(Float.isNaN(Support.parseOptional("", "x")));
    assertTrue(Float.isNaN(Support.parseOptional("NaN", "x")));
    assertEquals(0.25f, Support.parseOptional(" 0.25 ", "x"), 0);
    assertEquals("", Support.formatOptional(Float.NaN));
    assertEquals("3", Support.formatOptional(3f));
    try {
      Support.parseOptional("abc", "Threshold of peaks");
      fail();
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage().contains("Threshold of peaks"));
    }
    assertArrayEquals(new String[] {"auto", "cpu", "cuda:0"},
        Support.deviceChoices(Map.of("devices", Map.of("cuda_devices", 1L)), "auto"));
  }
}
