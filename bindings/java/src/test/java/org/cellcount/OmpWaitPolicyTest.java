package org.cellcount;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotEquals;
import static org.junit.Assert.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.Assume;
import org.junit.Test;

/**
 * Issue 21 item 4: a JVM host (Fiji) gets passive OpenMP waiting unless the user chose otherwise. libgomp
 * reads OMP_WAIT_POLICY when the JNI library pulls it in, and with OMP_DISPLAY_ENV=verbose it prints what it
 * read: GOMP_SPINCOUNT is 0 under PASSIVE, 300000 when the variable is unset, 30 billion under ACTIVE. Each
 * case runs in a fresh JVM (CellCount's main), since a loaded libgomp never reads the variable again.
 */
public class OmpWaitPolicyTest {
  private static final Pattern SPIN = Pattern.compile("GOMP_SPINCOUNT = '(\\d+)'");

  /** The child JVM's output; its environment without OMP_WAIT_POLICY, or with it set to {@code policy}. */
  private static String run(String policy) throws Exception {
    String java = new File(new File(System.getProperty("java.home"), "bin"), "java").getPath();
    String classes = new File(CellCount.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getPath();
    List<String> cmd = new ArrayList<>();
    cmd.add(java);
    String lib = System.getProperty("cellcount.library.path");
    if (lib != null && !lib.isEmpty()) cmd.add("-Dcellcount.library.path=" + lib);
    cmd.add("-cp");
    cmd.add(classes);
    cmd.add("org.cellcount.CellCount");
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
    Map<String, String> env = pb.environment();
    env.remove("OMP_WAIT_POLICY");
    env.remove("GOMP_SPINCOUNT");
    env.put("OMP_DISPLAY_ENV", "verbose");
    if (policy != null) env.put("OMP_WAIT_POLICY", policy);
    Process p = pb.start();
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (InputStream in = p.getInputStream()) {
      in.transferTo(out);
    }
    String text = out.toString(StandardCharsets.UTF_8);
    assertEquals("the child JVM failed:\n" + text, 0, p.waitFor());
    return text;
  }

  private static long spinCount(String out) {
    Matcher m = SPIN.matcher(out);
    Assume.assumeTrue("the OpenMP runtime is not libgomp (no GOMP_SPINCOUNT): nothing to check", m.find());
    return Long.parseLong(m.group(1));
  }

  @Test
  public void passiveUnlessSet() throws Exception {
    String out = run(null);
    assertTrue(out, out.contains("cellcount "));
    assertEquals("without OMP_WAIT_POLICY the Java binding must ask for passive waiting:\n" + out, 0, spinCount(out));
  }

  @Test
  public void keepsTheUsersValue() throws Exception {
    String out = run("ACTIVE");
    assertNotEquals("a user's OMP_WAIT_POLICY=ACTIVE must be kept:\n" + out, 0, spinCount(out));
  }
}
