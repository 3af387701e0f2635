package org.cellcount;

/**
 * Progress of a long call (prediction over tiles, training epochs). Runs on the thread that made the call,
 * between tiles or steps. Return {@code true} to cancel: the call then throws a {@link CellCountException}
 * whose {@link CellCountException#isCancelled()} is true, and the model stays usable. An exception thrown
 * here cancels the call too and is re-thrown from it.
 */
@FunctionalInterface
public interface ProgressListener {
  boolean progress(float fraction, String stage);
}
