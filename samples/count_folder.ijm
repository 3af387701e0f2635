// count_folder.ijm -- counts every image of a folder (every slice of stacks) with Plugins > Cell Counting
// and writes one CSV: image, slice, count, points, model, method, device, precision, seconds.
//
// In Fiji: Plugins > Macros > Run... and pick this file (it asks for the folder and the model).
// Batch (no GUI):
//   ImageJ -batch samples/count_folder.ijm "input=[/data/images] model=dcl-vgg output=[/data/counts.csv]"
// model= is a model name the plugin lists (shipped/installed models); folder=[/path/to/model] takes any
// model folder instead. An existing output file is never overwritten.

args = getArgument();
input = call("ij.Macro.getValue", args, "input", "");
model = call("ij.Macro.getValue", args, "model", "");
folder = call("ij.Macro.getValue", args, "folder", "");
output = call("ij.Macro.getValue", args, "output", "");
if (input == "") input = getDirectory("Folder of images to count");
if (model == "" && folder == "") {
  Dialog.create("Count a folder");
  Dialog.addString("Model name (as Plugins > Cell Counting lists it)", "dcl-vgg");
  Dialog.addDirectory("or model folder", "");
  Dialog.show();
  model = Dialog.getString();
  folder = Dialog.getString();
}
if (!endsWith(input, "/") && !endsWith(input, File.separator)) input = input + File.separator;
if (output == "") output = input + "cellcount_counts.csv";
if (File.exists(output)) exit("count_folder: " + output + " exists; give another output= (nothing was overwritten)");

table = "Cell counts";
setBatchMode(true);
first = 0;
if (isOpen(table)) first = Table.size(table);
files = getFileList(input);
Array.sort(files);
n = 0;
for (i = 0; i < files.length; i++) {
  name = toLowerCase(files[i]);
  if (!(endsWith(name, ".png") || endsWith(name, ".tif") || endsWith(name, ".tiff") || endsWith(name, ".jpg")
        || endsWith(name, ".jpeg") || endsWith(name, ".bmp"))) continue;
  open(input + files[i]);
  if (folder != "")
    run("Count with any model", "folder=[" + folder + "] slices=all region=[whole image]");
  else
    run("Count with any model", "model=[" + model + "] slices=all region=[whole image]");
  close();
  n++;
}
if (n == 0) exit("count_folder: no images in " + input);

f = File.open(output);
print(f, "image,slice,count,points,model,method,device,precision,seconds");
for (r = first; r < Table.size(table); r++) {
  image = Table.getString("image", r, table);
  if (indexOf(image, ",") >= 0) image = "\"" + image + "\"";
  print(f, image + "," + Table.get("slice", r, table) + ","
        + d2s(Table.get("count", r, table), 3) + "," + Table.get("points", r, table) + ","
        + Table.getString("model", r, table) + "," + Table.getString("method", r, table) + ","
        + Table.getString("device", r, table) + "," + Table.getString("precision", r, table) + ","
        + d2s(Table.get("seconds", r, table), 3));
}
File.close(f);
print("count_folder: " + n + " image(s) of " + input + " counted into " + output);
