package org.cellcount.fiji;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.cellcount.Json;
import org.junit.Test;

/** The training and evaluation dialogs' fields come from the library's field metadata
 * (cellcount_request_options): order, advanced split, labels (= macro keys), ranges and choices. The
 * metadata here is a sample in the library's format; the ImageJ acceptance macro runs the real one. */
public class RequestDialogTest {
  private static final String META = "["
      + "{\"name\":\"method\",\"type\":\"choice\",\"choices\":[\"dcl\"],\"default\":\"dcl\",\"doc\":\"m\",\"advanced\":false,\"nullable\":false},"
      + "{\"name\":\"seed\",\"type\":\"int\",\"default\":0,\"min\":0,\"max\":9223372036854775807,\"doc\":\"seed\",\"advanced\":false,\"nullable\":false},"
      + "{\"name\":\"lr\",\"type\":\"number\",\"default\":0.001,\"min\":1e-12,\"max\":10.0,\"doc\":\"peak lr\",\"advanced\":false,\"nullable\":false},"
      + "{\"name\":\"resume\",\"type\":\"bool\",\"default\":true,\"doc\":\"r\",\"advanced\":true,\"nullable\":false},"
      + "{\"name\":\"dataset\",\"type\":\"path\",\"default\":\"\",\"doc\":\"d\",\"advanced\":false,\"nullable\":false},"
      + "{\"name\":\"preset\",\"type\":\"choice\",\"choices\":[\"\",\"vgg\"],\"default\":\"\",\"doc\":\"p\",\"advanced\":false,\"nullable\":false},"
      + "{\"name\":\"count_levels\",\"type\":\"int_list\",\"default\":[],\"min\":1,\"max\":512,\"doc\":\"c\",\"advanced\":true,\"nullable\":false},"
      + "{\"name\":\"thr\",\"type\":\"number\",\"default\":null,\"min\":0,\"doc\":\"t\",\"advanced\":false,\"nullable\":true}]";

  @SuppressWarnings("unchecked")
  static List<Map<String, Object>> meta() {
    List<Map<String, Object>> out = new ArrayList<>();
    for (Object o : (List<Object>) Json.parse(META)) out.add((Map<String, Object>) o);
    return out;
  }

  private static Map<String, Object> field(String name) {
    for (Map<String, Object> o : meta()) if (o.get("name").equals(name)) return o;
    throw new AssertionError(name);
  }

  @Test
  public void fieldsFollowTheMetadataWithAdvancedOnesApart() {
    RequestDialog d = new RequestDialog(meta(), Set.of("method"));
    assertEquals(List.of("dataset", "seed", "lr", "preset", "thr"), d.basicKeys());
    assertEquals(List.of("resume", "count_levels"), d.advancedKeys());
    // the label starts with the field's name, so the macro key (ImageJ cuts at the first space) is the name
    assertEquals("lr (1.0E-12 to 10.0)", RequestDialog.label(field("lr")));
    assertEquals("thr (at least 0)", RequestDialog.label(field("thr")));
    assertEquals("dataset", RequestDialog.label(field("dataset")));
    assertTrue(d.help(d.basicKeys()).contains("peak lr (1.0E-12 to 10.0); default 0.001"));
  }

  @Test
  public void valuesAreCheckedAgainstTheDeclaredRangeAndChoices() {
    assertEquals(5L, RequestDialog.value(field("seed"), "5"));
    assertEquals(9223372036854775807L, RequestDialog.value(field("seed"), "9223372036854775807"));
    expectError(field("seed"), "-1", "seed: -1 is out of range (0 to 9223372036854775807)");
    expectError(field("lr"), "50", "lr: 50 is out of range (1.0E-12 to 10.0)");
    expectError(field("lr"), "0", "lr: 0 is out of range");
    expectError(field("lr"), "NaN", "lr: expected a finite number");
    expectError(field("count_levels"), "[1, 1000]", "count_levels: [1, 1000] is out of range (1 to 512)");
    expectError(field("count_levels"), "[1.5]", "count_levels: expected a list of whole numbers");
    expectError(field("preset"), "abc", "preset: expected one of [\"\",\"vgg\"]");
    expectError(field("resume"), "yes", "resume: expected true or false");
    assertEquals("", RequestDialog.value(field("preset"), RequestDialog.NONE_CHOICE));
    assertEquals("vgg", RequestDialog.value(field("preset"), "vgg"));
    assertNull(RequestDialog.value(field("thr"), ""));
    assertEquals(0.5, (Double) RequestDialog.value(field("thr"), "0.5"), 0);
  }

  private static void expectError(Map<String, Object> o, String text, String start) {
    try {
      RequestDialog.value(o, text);
      fail(o.get("name") + "=" + text + " was accepted");
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage(), e.getMessage().startsWith(start));
    }
  }
}
