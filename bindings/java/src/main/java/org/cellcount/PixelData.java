package org.cellcount;

/**
 * A 2-D image for {@link CellCountModel#predict}: row-major, channels interleaved (H x W x C), tightly
 * packed, in a Java array that is only read (never retained, never written). Unsigned 8-bit in byte[],
 * unsigned 16-bit in short[], 32-bit float in float[] (ImageJ's pixel arrays as they are).
 */
public final class PixelData {
  public static final int U8 = 1;
  public static final int U16 = 2;
  public static final int F32 = 3;

  final Object array;
  final int dtype;
  public final int width, height, channels;

  private PixelData(Object array, int dtype, int length, int width, int height, int channels) {
    if (width < 1 || height < 1 || channels < 1)
      throw new IllegalArgumentException("image size must be >= 1, got " + width + " x " + height + " x " + channels);
    if ((long) width * height * channels > length)
      throw new IllegalArgumentException("pixel array holds " + length + " values, " + width + " x " + height + " x "
          + channels + " needs " + ((long) width * height * channels));
    this.array = array;
    this.dtype = dtype;
    this.width = width;
    this.height = height;
    this.channels = channels;
  }

  public static PixelData ofBytes(byte[] pixels, int width, int height, int channels) {
    return new PixelData(pixels, U8, pixels.length, width, height, channels);
  }

  public static PixelData ofShorts(short[] pixels, int width, int height, int channels) {
    return new PixelData(pixels, U16, pixels.length, width, height, channels);
  }

  public static PixelData ofFloats(float[] pixels, int width, int height, int channels) {
    return new PixelData(pixels, F32, pixels.length, width, height, channels);
  }

  public int dtype() {
    return dtype;
  }
}
