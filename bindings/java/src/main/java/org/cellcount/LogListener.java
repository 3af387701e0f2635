package org.cellcount;

/** Receives the library's log lines (see {@link CellCount#setLogListener}). May run on any thread that is
 * inside a cellcount call. Levels: {@link CellCount#LOG_DEBUG} .. {@link CellCount#LOG_ERROR}. */
@FunctionalInterface
public interface LogListener {
  void log(int level, String message);
}
