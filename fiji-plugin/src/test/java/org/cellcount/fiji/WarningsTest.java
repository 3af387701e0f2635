package org.cellcount.fiji;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import ij.measure.ResultsTable;
import java.util.List;
import org.junit.Test;

/** Out-of-domain warnings (issue 24) in the "Cell counts" table, its CSV and the Log: the formatting only (the
 * library's warnings themselves are checked in the ImageJ acceptance macro). */
public class WarningsTest {
  @Test
  public void cellJoinsTheMessages() {
    assertEquals("", Support.warningsCell(List.of()));
    assertEquals("too bright", Support.warningsCell(List.of("too bright")));
    assertEquals("too bright; 0.5, above 0.3", Support.warningsCell(List.of("too bright", "0.5, above 0.3")));
  }

  @Test
  public void logLineNamesTheImageAndTheSliceOfAStack() {
    assertEquals("cellcount warning (cells.png): too bright", Support.warningLine("cells.png", 0, "too bright"));
    assertEquals("cellcount warning (stack.tif, slice 3): too bright", Support.warningLine("stack.tif", 3, "too bright"));
  }

  private static void row(ResultsTable rt, String image, String warnings) {
    rt.incrementCounter();
    rt.addValue("image", image);
    for (String col : new String[] {"slice", "count", "points", "seconds"}) rt.addValue(col, 1);
    rt.addValue("warnings", warnings);
    rt.addValue("status", "ok");
  }

  @Test
  public void csvRowHasTheWarningsBeforeTheStatus() {
    ResultsTable rt = new ResultsTable();
    row(rt, "a.png", Support.warningsCell(List.of("peak 0.05, above 0.03", "far off")));
    row(rt, "b.png", Support.warningsCell(List.of()));
    List<String> cols = List.of(CountFolder.COLUMNS);
    assertEquals(cols.size() - 2, cols.indexOf("warnings"));
    assertTrue(CountFolder.csvRow(rt, 0).endsWith(",\"peak 0.05, above 0.03; far off\",ok"));
    assertTrue(CountFolder.csvRow(rt, 1).endsWith(",,ok"));
    List<String> saved = List.of(CountCells.SAVED_COLUMNS);
    assertEquals(saved.size() - 2, saved.indexOf("warnings"));
  }
}
