package org.cellcount;

import java.nio.charset.StandardCharsets;

/**
 * The one exception of the bindings: a status of the C ABI (cellcount.h, values permanent) and the
 * library's message saying what was expected and what came. A cancelled call is one too, told apart by
 * {@link #isCancelled()}.
 */
public final class CellCountException extends Exception {
  private static final long serialVersionUID = 1L;

  // Values of cellcount_status (a test checks them against the header).
  public static final int CANCELLED = 1;
  public static final int ERR_INVALID_ARGUMENT = 10;
  public static final int ERR_BUFFER_TOO_SMALL = 11;
  public static final int ERR_UNSUPPORTED = 12;
  public static final int ERR_IO = 20;
  public static final int ERR_MODEL_FORMAT = 21;
  public static final int ERR_WRONG_METHOD = 22;
  public static final int ERR_DATASET = 23;
  public static final int ERR_OUT_OF_MEMORY = 30;
  public static final int ERR_DEVICE = 31;
  public static final int ERR_INTERNAL = 99;

  private final int status;
  private final String statusName;

  public CellCountException(int status, String statusName, String message) {
    super(message);
    this.status = status;
    this.statusName = statusName;
  }

  /** Made by the JNI shim (UTF-8 bytes, decoded here). */
  CellCountException(int status, byte[] statusName, byte[] message) {
    this(status, new String(statusName, StandardCharsets.UTF_8), new String(message, StandardCharsets.UTF_8));
  }

  /** The cellcount_status value, e.g. {@link #ERR_IO}. */
  public int status() {
    return status;
  }

  /** The status as the library names it, e.g. "CELLCOUNT_ERR_IO". */
  public String statusName() {
    return statusName;
  }

  /** True when a progress listener (Esc in Fiji) cancelled the call; the model stays usable. */
  public boolean isCancelled() {
    return status == CANCELLED;
  }

  @Override
  public String toString() {
    return statusName + ": " + getMessage();
  }
}
