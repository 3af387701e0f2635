package org.cellcount.fiji;

import static org.junit.Assert.assertEquals;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** Issue 24: the model flagged {@code "default": true} in model.json (the generalist) is offered first. */
public class ModelFinderTest {
  @Rule public TemporaryFolder tmp = new TemporaryFolder();

  private void model(File root, String name, String json) throws IOException {
    File d = new File(root, name);
    d.mkdirs();
    Files.write(new File(d, "model.json").toPath(), json.getBytes(StandardCharsets.UTF_8));
  }

  @Test
  public void theDefaultFlaggedModelComesFirstThenByName() throws IOException {
    File root = tmp.newFolder("models");
    model(root, "dcl-adi", "{\"method\": \"dcl\"}");
    model(root, "dcl-general", "{\"method\": \"dcl\", \"default\": true}");
    model(root, "dcl-mbm", "{\"method\": \"dcl\", \"default\": false}");
    String old = System.getProperty("cellcount.models");
    System.setProperty("cellcount.models", root.getPath());
    try {
      List<String> names = new ArrayList<>();
      for (ModelFinder.Entry e : ModelFinder.find("dcl")) if (e.dir.getParentFile().equals(root)) names.add(e.name);
      assertEquals(List.of("dcl-general", "dcl-adi", "dcl-mbm"), names);
    } finally {
      if (old == null) System.clearProperty("cellcount.models");
      else System.setProperty("cellcount.models", old);
    }
  }
}
