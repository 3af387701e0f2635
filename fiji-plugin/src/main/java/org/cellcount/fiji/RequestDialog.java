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
 * A dialog made from a default request of the library (cellcount_request_defaults): one field per request
 * field, labelled with the field's name (so the macro key is the field name), showing the library's
 * default. Only fields the user changed are sent: the library fills in the rest with its own defaults.
 * Booleans are true/false choices, so a hand-written macro that leaves one out keeps the default.
 */
final class RequestDialog {
  /** Fields shown first, when the request has them. */
  private static final List<String> FIRST = Arrays.asList("dataset", "out", "model", "split", "split_file");

  private final Map<String, Object> defaults;
  private final List<String> keys = new ArrayList<>();

  RequestDialog(Map<String, Object> defaults, Set<String> skip) {
    this.defaults = defaults;
    for (String k : FIRST) if (defaults.containsKey(k) && !skip.contains(k)) keys.add(k);
    for (String k : defaults.keySet()) if (!skip.contains(k) && !keys.contains(k)) keys.add(k);
  }

  void addFields(GenericDialog gd) {
    for (String k : keys) {
      Object v = defaults.get(k);
      if (v instanceof Boolean) {
        gd.addChoice(k, new String[] {"true", "false"}, v.toString());
      } else if (v instanceof String) {
        if (isFolder(k)) gd.addDirectoryField(k, (String) v, 28);
        else if (isFile(k)) gd.addFileField(k, (String) v, 28);
        else gd.addStringField(k, (String) v, 20);
      } else {
        gd.addStringField(k, text(v), 20);
      }
    }
  }

  private static boolean isFolder(String k) {
    return k.equals("dataset") || k.equals("out") || k.equals("model") || k.endsWith("_dir");
  }

  private static boolean isFile(String k) {
    return k.endsWith("_file") || k.equals("checkpoint");
  }

  /** How a default shows in a text field: numbers as written, arrays/objects/null as JSON. */
  static String text(Object v) {
    if (v instanceof Double || v instanceof Long) return v.toString();
    return Json.write(v);
  }

  /** Reads the fields in the order added; returns the fields whose value differs from the default.
   * IllegalArgumentException names a field whose text does not fit its type.
   *
   * <p>In a macro, ImageJ finds "epochs" inside "restart_epochs=..." (a key may follow an underscore), so
   * the values are taken from the macro's options by exact key instead; a key the macro leaves out keeps the
   * library's default. */
  Map<String, Object> readChanged(GenericDialog gd) {
    String options = Macro.getOptions();
    Map<String, String> exact = options == null ? null : parseOptions(options);
    Map<String, Object> changed = new LinkedHashMap<>();
    for (String k : keys) {
      Object d = defaults.get(k);
      String text = d instanceof Boolean ? gd.getNextChoice() : gd.getNextString();
      if (exact != null) text = exact.containsKey(k) ? exact.get(k) : (d instanceof String ? (String) d : text(d));
      Object v;
      if (d instanceof Boolean) {
        if (!text.equals("true") && !text.equals("false"))
          throw new IllegalArgumentException(k + ": expected true or false, got '" + text + "'");
        v = Boolean.valueOf(text);
      } else if (d instanceof String) {
        v = text;
      } else {
        v = parse(k, d, text.trim());
      }
      if (!same(d, v)) changed.put(k, v);
    }
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

  static Object parse(String key, Object d, String t) {
    try {
      if (d instanceof Long) return Long.parseLong(t);
      if (d instanceof Double) return Double.parseDouble(t);
      return Json.parse(t);
    } catch (IllegalArgumentException e) {
      String want = d instanceof Long ? "a whole number" : d instanceof Double ? "a number" : "JSON like " + Json.write(d);
      throw new IllegalArgumentException(key + ": expected " + want + ", got '" + t + "'");
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
