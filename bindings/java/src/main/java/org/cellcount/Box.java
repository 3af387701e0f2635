package org.cellcount;

/** An exemplar box in pixel coordinates, half-open: [x0, x1) x [y0, y1), x = column, y = row. */
public final class Box {
  public final float x0, y0, x1, y1;

  public Box(float x0, float y0, float x1, float y1) {
    this.x0 = x0;
    this.y0 = y0;
    this.x1 = x1;
    this.y1 = y1;
  }

  /** A box from an ImageJ-style rectangle (left, top, width, height). */
  public static Box ofRect(double x, double y, double width, double height) {
    return new Box((float) x, (float) y, (float) (x + width), (float) (y + height));
  }

  @Override
  public String toString() {
    return "[" + x0 + "," + y0 + "," + x1 + "," + y1 + ")";
  }
}
