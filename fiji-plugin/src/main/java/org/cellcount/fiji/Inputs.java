package org.cellcount.fiji;

import ij.ImagePlus;
import ij.ImageStack;
import ij.gui.Roi;
import ij.gui.ShapeRoi;
import ij.process.ByteProcessor;
import ij.process.ColorProcessor;
import ij.process.ImageProcessor;
import java.util.ArrayList;
import java.util.List;
import org.cellcount.Box;
import org.cellcount.PixelData;

/**
 * ImageJ images and ROIs as the library takes them. Layout only, no image maths: pixels are passed as
 * ImageJ holds them (8-bit, 16-bit, 32-bit; RGB as 3 interleaved channels, which the library reduces
 * when a 1-channel model says how), a multi-channel hyperstack as interleaved channels when the model takes
 * that many, rectangles as exemplar boxes, area ROIs as a region mask.
 */
final class Inputs {
  private Inputs() {}

  /** One 2-D plane to count: its stack index (1-based) and hyperstack position; c == 0 means all channels. */
  static final class Position {
    final int index, c, z, t;

    Position(int index, int c, int z, int t) {
      this.index = index;
      this.c = c;
      this.z = z;
      this.t = t;
    }
  }

  /** True when the image's channels are the model's input channels (packed into one multi-channel view). */
  static boolean packChannels(ImagePlus imp, int modelChannels) {
    return modelChannels > 1 && imp.getNChannels() == modelChannels && imp.getBitDepth() != 24;
  }

  /** The current plane, or every z/t position (at the current channel, or all channels when packed). */
  static List<Position> positions(ImagePlus imp, boolean all, boolean pack) {
    List<Position> out = new ArrayList<>();
    int[] now = imp.convertIndexToPosition(imp.getCurrentSlice()); // {c, z, t} of the plane shown
    int c = pack ? 0 : now[0];
    int channelForIndex = pack ? 1 : now[0];
    if (!all) {
      out.add(new Position(imp.getStackIndex(channelForIndex, now[1], now[2]), c, now[1], now[2]));
      return out;
    }
    for (int t = 1; t <= imp.getNFrames(); t++)
      for (int z = 1; z <= imp.getNSlices(); z++)
        out.add(new Position(imp.getStackIndex(channelForIndex, z, t), c, z, t));
    return out;
  }

  /** The pixels of one position, as ImageJ holds them (arrays are shared, only read). */
  static PixelData pixels(ImagePlus imp, Position p) {
    ImageStack stack = imp.getStack();
    int w = imp.getWidth(), h = imp.getHeight();
    if (p.c != 0 || imp.getNChannels() == 1) return pixels(stack.getProcessor(p.index), w, h);
    int nc = imp.getNChannels();
    ImageProcessor[] ch = new ImageProcessor[nc];
    for (int k = 0; k < nc; k++) ch[k] = stack.getProcessor(imp.getStackIndex(k + 1, p.z, p.t));
    int n = w * h;
    switch (imp.getBitDepth()) {
      case 8: {
        byte[] out = new byte[n * nc];
        for (int k = 0; k < nc; k++) {
          byte[] s = (byte[]) ch[k].getPixels();
          for (int i = 0; i < n; i++) out[i * nc + k] = s[i];
        }
        return PixelData.ofBytes(out, w, h, nc);
      }
      case 16: {
        short[] out = new short[n * nc];
        for (int k = 0; k < nc; k++) {
          short[] s = (short[]) ch[k].getPixels();
          for (int i = 0; i < n; i++) out[i * nc + k] = s[i];
        }
        return PixelData.ofShorts(out, w, h, nc);
      }
      default: {
        float[] out = new float[n * nc];
        for (int k = 0; k < nc; k++) {
          float[] s = (float[]) ch[k].getPixels();
          for (int i = 0; i < n; i++) out[i * nc + k] = s[i];
        }
        return PixelData.ofFloats(out, w, h, nc);
      }
    }
  }

  static PixelData pixels(ImageProcessor ip, int w, int h) {
    Object px = ip.getPixels();
    if (px instanceof byte[]) return PixelData.ofBytes((byte[]) px, w, h, 1);
    if (px instanceof short[]) return PixelData.ofShorts((short[]) px, w, h, 1);
    if (px instanceof float[]) return PixelData.ofFloats((float[]) px, w, h, 1);
    // RGB: packed ints to interleaved R, G, B bytes.
    int[] rgb = (int[]) ((ColorProcessor) ip).getPixels();
    byte[] out = new byte[rgb.length * 3];
    for (int i = 0; i < rgb.length; i++) {
      out[3 * i] = (byte) (rgb[i] >> 16);
      out[3 * i + 1] = (byte) (rgb[i] >> 8);
      out[3 * i + 2] = (byte) rgb[i];
    }
    return PixelData.ofBytes(out, w, h, 3);
  }

  /** The parts of a selection (a composite selection has several). */
  static Roi[] parts(Roi roi) {
    if (roi == null) return new Roi[0];
    if (roi instanceof ShapeRoi) return ((ShapeRoi) roi).getRois();
    return new Roi[] {roi};
  }

  static boolean isRectangle(Roi r) {
    return r != null && r.getType() == Roi.RECTANGLE && r.getCornerDiameter() == 0;
  }

  static Box box(Roi r) {
    java.awt.geom.Rectangle2D.Double b = r.getFloatBounds();
    return Box.ofRect(b.x, b.y, b.width, b.height);
  }

  /** Exemplar boxes: the rectangles of a (composite) selection. */
  static List<Box> selectionRectangles(Roi roi) {
    List<Box> out = new ArrayList<>();
    for (Roi r : parts(roi)) if (isRectangle(r)) out.add(box(r));
    return out;
  }

  /** Exemplar boxes: the ROI Manager's rectangles that belong to position p (or to no position). */
  static List<Box> managerRectangles(Roi[] rois, Position p) {
    List<Box> out = new ArrayList<>();
    if (rois == null) return out;
    for (Roi r : rois) {
      if (!isRectangle(r)) continue;
      boolean here;
      if (r.hasHyperStackPosition()) {
        here = (r.getZPosition() == 0 || r.getZPosition() == p.z) && (r.getTPosition() == 0 || r.getTPosition() == p.t);
      } else {
        here = r.getPosition() == 0 || r.getPosition() == p.index;
      }
      if (here) out.add(box(r));
    }
    return out;
  }

  /**
   * The region to count in, from the selection: the whole area selection, or, when its rectangles are the
   * exemplars, its other area parts. Null when there is none (count the whole image).
   */
  static Roi regionOf(Roi roi, boolean rectanglesAreExemplars) {
    if (roi == null || !roi.isArea()) return null;
    if (!rectanglesAreExemplars) return roi;
    ShapeRoi union = null;
    for (Roi r : parts(roi)) {
      if (isRectangle(r) || !r.isArea()) continue;
      union = union == null ? new ShapeRoi(r) : union.or(new ShapeRoi(r));
    }
    return union;
  }

  /** Region mask: 1 inside the ROI, 0 outside, image size. */
  static byte[] mask(Roi region, int width, int height) {
    ByteProcessor bp = new ByteProcessor(width, height);
    bp.setValue(1);
    bp.fill(region);
    return (byte[]) bp.getPixels();
  }
}
