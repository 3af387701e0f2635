// count_folder.ijm -- counts every image of a folder (every slice of stacks) into one CSV: image, slice,
// count, points, model, method, device, precision, seconds, area, cells per unit2, pixel width, pixel height,
// unit, path, status.
//
// This is now the menu command Plugins > Cell Counting > Count folder... (installed with the plugin,
// recordable); this macro only passes its argument on, for scripts written against it.
// In Fiji: Plugins > Macros > Run... and pick this file, or use the menu command (same dialog).
// Batch (no GUI):
//   ImageJ -batch samples/count_folder.ijm "input=[/data/images] model=dcl-vgg output=[/data/counts.csv]"
// or, the same, any macro with:
//   run("Count folder...", "input=[/data/images] model=dcl-vgg output=[/data/counts.csv]");
// model= is a model name the plugin lists (shipped/installed models); folder=[/path/to/model] takes any
// model folder instead. An existing output file is never overwritten. An image that cannot be opened or
// counted is reported in the Log and in the status column, the others are counted, rows are written as they
// are produced, and ImageJ -batch then exits with status 1.

args = getArgument();
if (args == "") run("Count folder...");
else run("Count folder...", args);
