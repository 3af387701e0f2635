package org.cellcount.fiji;

import ij.Macro;
import ij.gui.GenericDialog;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.cellcount.Json;

/**
 * A dialog made from the library's field metadata (cellcount_request_options: name, type, default, min,
 * max, choices, doc, advanced): one field per request field, its macro key the field's name (the label is
 * the name, then the range or the choices in brackets, which ImageJ leaves out of the key), showing the
 * library's default. Values are checked against the declared type and range on OK, naming the field. Fields
 * marked "advanced" go into a second dialog, shown when the first one's "advanced" box is ticked; in a macro
 * they are read by name whether or not it ticks the box. Only fields the user changed are sent: the library
 * fills in the rest with its own defaults. No field, default or range is written here.
 *
 * <p>Choice: booleans are true/false choices rather than checkboxes, so that a macro leaving one out keeps
 * the library's default (an unticked checkbox is not recorded, and would read as false).
 */
final class RequestDialog {
  /** Fields shown first, when the request has them. */
  private static final List<String> FIRST = Arrays.asList("dataset", "out", "model", "split", "split_file");
  /** The box that opens the advanced fields' dialog (its macro key). */
  static final String ADVANCED = "advanced";
  /** How the choice "" shows (an empty item cannot be recorded by a macro). */
  static final String NONE_CHOICE = "(none)";

  private final Map<String, Map<String, Object>> meta = new LinkedHashMap<>();
  private final List<String> basic = new ArrayList<>();
  private final List<String> advanced = new ArrayList<>();
  private boolean wantAdvanced;

  /** @param options cellcount_request_options entries; @param skip names the command fills in itself. */
  RequestDialog(List<Map<String, Object>> options, Set<String> skip) {
    for (Map<String, Object> o : options) {
      String name = String.valueOf(o.get("name"));
      if (!skip.contains(name)) meta.put(name, o);
    }
    List<String> order = new ArrayList<>();
    for (String k : FIRST) if (meta.containsKey(k)) order.add(k);
    for (String k : meta.keySet()) if (!order.contains(k)) order.add(k);
    for (String k : order) (Boolean.TRUE.equals(meta.get(k).get("advanced")) ? advanced : basic).add(k);
  }

  List<String> basicKeys() {
    return basic;
  }

  List<String> advancedKeys() {
    return advanced;
  }

  private static String type(Map<String, Object> o) {
    return String.valueOf(o.get("type"));
  }

  /** The field's label: its name (= the macro key), then its range or choices, e.g. "crop (32 to 4096)". */
  static String label(Map<String, Object> o) {
    String name = String.valueOf(o.get("name"));
    String range = rangeText(o);
    return range.isEmpty() ? name : name + " (" + range + ")";
  }

  static String rangeText(Map<String, Object> o) {
    Object lo = o.get("min"), hi = o.get("max");
    if (lo != null && hi != null) return text(lo) + " to " + text(hi);
    if (lo != null) return "at least " + text(lo);
    if (hi != null) return "at most " + text(hi);
    return "";
  }

  /** The basic fields, then the "advanced" box when there are advanced fields. */
  void addFields(GenericDialog gd) {
    add(gd, basic);
    if (!advanced.isEmpty())
      gd.addCheckbox(ADVANCED + " (" + advanced.size() + " more settings in a second dialog)", false);
  }

  /** The advanced fields (a second dialog). */
  void addAdvancedFields(GenericDialog gd) {
    add(gd, advanced);
  }

  private void add(GenericDialog gd, List<String> keys) {
    for (String k : keys) {
      Map<String, Object> o = meta.get(k);
      Object v = o.get("default");
      String label = label(o);
      switch (type(o)) {
        case "bool":
          gd.addChoice(label, new String[] {"true", "false"}, String.valueOf(v));
          break;
        case "choice": {
          List<?> cs = (List<?>) o.get("choices");
          String[] items = new String[cs.size()];
          for (int i = 0; i < items.length; i++) items[i] = shown(String.valueOf(cs.get(i)));
          gd.addChoice(label, items, shown(String.valueOf(v)));
          break;
        }
        case "path":
          if (isFile(k)) gd.addFileField(label, String.valueOf(v), 28);
          else gd.addDirectoryField(label, String.valueOf(v), 28);
          break;
        case "string":
          gd.addStringField(label, String.valueOf(v), 20);
          break;
        default:
          gd.addStringField(label, text(v), 20);
      }
    }
    gd.addHelp(help(keys));
  }

  /** The Help button's page: each field's one-line doc, range and default, as the library declares them. */
  String help(List<String> keys) {
    StringBuilder b = new StringBuilder("<html><table>");
    for (String k : keys) {
      Map<String, Object> o = meta.get(k);
      String range = rangeText(o);
      b.append("<tr><td><b>").append(esc(k)).append("</b></td><td>").append(esc(String.valueOf(o.getOrDefault("doc", ""))));
      if (!range.isEmpty()) b.append(" (").append(esc(range)).append(')');
      b.append("; default ").append(esc(text(o.get("default")))).append("</td></tr>");
    }
    return b.append("</table></html>").toString();
  }

  private static String esc(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
  }

  private static String shown(String choice) {
    return choice.isEmpty() ? NONE_CHOICE : choice;
  }

  /** A path field names a file (else a folder) by the library's naming of request fields. */
  private static boolean isFile(String k) {
    return k.endsWith("_file") || k.equals("checkpoint") || k.equals("recipe");
  }

  /** How a default shows in a text field: numbers as written, arrays/objects/null as JSON. */
  static String text(Object v) {
    if (v instanceof Double || v instanceof Long) return v.toString();
    return Json.write(v);
  }

  /** Reads the basic fields (and the "advanced" box) in the order added; returns the fields whose value
   * differs from the default. IllegalArgumentException names a field whose value does not fit.
   *
   * <p>In a macro, ImageJ finds "epochs" inside "restart_epochs=..." (a key may follow an underscore), so
   * the values are taken from the macro's options by exact key instead; a key the macro leaves out keeps the
   * library's default. */
  Map<String, Object> readChanged(GenericDialog gd) {
    Map<String, Object> changed = read(gd, basic);
    wantAdvanced = !advanced.isEmpty() && gd.getNextBoolean();
    return changed;
  }

  /** Whether the user asked for the advanced fields (then show a dialog with {@link #addAdvancedFields}). */
  boolean wantsAdvanced() {
    return wantAdvanced;
  }

  /** The changed advanced fields: from their dialog, or null when it was not shown (a macro still sets
   * them by name). */
  Map<String, Object> readAdvanced(GenericDialog gd) {
    if (gd == null && Macro.getOptions() == null) return new LinkedHashMap<>();
    return read(gd, advanced);
  }

  private Map<String, Object> read(GenericDialog gd, List<String> keys) {
    String options = Macro.getOptions();
    Map<String, String> exact = options == null ? null : parseOptions(options);
    Map<String, Object> changed = new LinkedHashMap<>();
    for (String k : keys) {
      Map<String, Object> o = meta.get(k);
      Object d = o.get("default");
      String t = type(o);
      String text = null;
      if (gd != null) text = t.equals("bool") || t.equals("choice") ? gd.getNextChoice() : gd.getNextString();
      if (exact != null) text = exact.containsKey(k) ? exact.get(k) : (d instanceof String ? (String) d : text(d));
      Object v = value(o, text);
      if (!same(d, v)) changed.put(k, v);
    }
    return changed;
  }

  /** Shows the advanced fields' dialog when the user ticked "advanced" and returns every changed field
   * (basic and advanced); null when a dialog was cancelled. */
  Map<String, Object> readAll(GenericDialog gd, String title) {
    Map<String, Object> changed = readChanged(gd);
    GenericDialog more = null;
    if (wantsAdvanced()) {
      more = new GenericDialog(title + " (advanced)");
      more.addMessage("Advanced settings (library defaults)");
      addAdvancedFields(more);
      more.showDialog();
      if (more.wasCanceled()) return null;
    }
    changed.putAll(readAdvanced(more));
    return changed;
  }

  /** key=value pairs of a macro options string (values in [brackets] may hold spaces; a bare key is a
   * ticked checkbox, "true"). */
  static Map<String, String> parseOptions(String options) {
    Map<String, String> out = new LinkedHashMap<>();
    int i = 0, n = options.length();
    while (i < n) {
      while (i < n && options.charAt(i) == ' ') i++;
      int k0 = i;
      while (i < n && options.charAt(i) != '=' && options.charAt(i) != ' ') i++;
      String key = options.substring(k0, i);
      if (key.isEmpty()) break;
      if (i >= n || options.charAt(i) == ' ') {
        out.put(key, "true");
        continue;
      }
      i++; // '='
      String value;
      if (i < n && options.charAt(i) == '[') {
        int end = options.indexOf(']', i + 1);
        if (end < 0) end = n;
        value = options.substring(i + 1, end);
        i = Math.min(n, end + 1);
      } else {
        int v0 = i;
        while (i < n && options.charAt(i) != ' ') i++;
        value = options.substring(v0, i);
      }
      out.put(key, value);
    }
    return out;
  }

  /** The value of a field's text by its declared type, checked against its declared range and choices;
   * IllegalArgumentException names the field and says what it takes. */
  static Object value(Map<String, Object> o, String text) {
    String k = String.valueOf(o.get("name"));
    String t = type(o);
    String s = text == null ? "" : text.trim();
    switch (t) {
      case "bool":
        if (!s.equals("true") && !s.equals("false"))
          throw new IllegalArgumentException(k + ": expected true or false, got '" + s + "'");
        return Boolean.valueOf(s);
      case "choice": {
        String c = s.equals(NONE_CHOICE) ? "" : s;
        List<?> cs = (List<?>) o.get("choices");
        if (cs != null && !cs.contains(c))
          throw new IllegalArgumentException(k + ": expected one of " + Json.write(cs) + ", got '" + s + "'");
        return c;
      }
      case "string":
      case "path":
        return text == null ? "" : text;
      default:
        break;
    }
    if (s.isEmpty() && Boolean.TRUE.equals(o.get("nullable"))) return null;
    Object v;
    try {
      if (t.equals("int")) v = Long.parseLong(s);
      else if (t.equals("number")) v = Double.parseDouble(s);
      else v = Json.parse(s);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(k + ": expected " + expected(o) + ", got '" + s + "'");
    }
    if (t.equals("number") && !Double.isFinite((Double) v))
      throw new IllegalArgumentException(k + ": expected a finite number, got '" + s + "'");
    if (t.endsWith("_list")) {
      if (!(v instanceof List)) throw new IllegalArgumentException(k + ": expected " + expected(o) + ", got '" + s + "'");
      for (Object e : (List<?>) v) {
        boolean fits = t.equals("string_list") ? e instanceof String
                       : t.equals("int_list") ? e instanceof Long : e instanceof Number;
        if (!fits) throw new IllegalArgumentException(k + ": expected " + expected(o) + ", got '" + s + "'");
        if (!t.equals("string_list")) checkRange(o, (Number) e, s);
      }
    } else if (v instanceof Number) {
      checkRange(o, (Number) v, s);
    } else if (t.equals("object") && !(v instanceof Map)) {
      throw new IllegalArgumentException(k + ": expected " + expected(o) + ", got '" + s + "'");
    }
    return v;
  }

  private static void checkRange(Map<String, Object> o, Number v, String s) {
    Object lo = o.get("min"), hi = o.get("max");
    double x = v.doubleValue();
    if ((lo != null && x < ((Number) lo).doubleValue()) || (hi != null && x > ((Number) hi).doubleValue()))
      throw new IllegalArgumentException(o.get("name") + ": " + s + " is out of range (" + rangeText(o) + ")");
  }

  private static String expected(Map<String, Object> o) {
    switch (type(o)) {
      case "int": return "a whole number";
      case "number": return "a number";
      case "int_list": return "a list of whole numbers like [1, 2]";
      case "number_list": return "a list of numbers like [0.5, 1]";
      case "string_list": return "a list of texts like [\"a\", \"b\"]";
      default: return "JSON like " + Json.write(o.get("default"));
    }
  }

  private static boolean same(Object d, Object v) {
    if (d == null) return v == null;
    if (d instanceof Number && v instanceof Number) return ((Number) d).doubleValue() == ((Number) v).doubleValue();
    return Json.write(d).equals(Json.write(v));
  }

  /** The options string a macro would pass for these fields (for provenance). */
  static String macroOptions(Map<String, Object> fields) {
    StringBuilder b = new StringBuilder();
    for (Map.Entry<String, Object> e : fields.entrySet()) {
      String v = e.getValue() instanceof String ? (String) e.getValue() : text(e.getValue());
      if (b.length() > 0) b.append(' ');
      b.append(e.getKey()).append('=').append(v.contains(" ") || v.isEmpty() ? "[" + v + "]" : v);
    }
    return b.toString();
  }
}
