# Golden test of a shipped model: count its samples/<name> images with the CLI and require the MAE against
# their ground truth to stay at or below the bound measured when the model was shipped (plus margin).
execute_process(COMMAND ${CLI} count --model ${MODEL} ${SAMPLES} --threads 2
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cellcount count failed (${rc}): ${err}")
endif()
if(NOT out MATCHES "MAE ([0-9.]+) over ([0-9]+)")
  message(FATAL_ERROR "no MAE line in the output")
endif()
set(mae ${CMAKE_MATCH_1})
if(mae GREATER ${MAX_MAE})
  message(FATAL_ERROR "MAE ${mae} on ${SAMPLES} exceeds the golden bound ${MAX_MAE}")
endif()
message(STATUS "MAE ${mae} <= ${MAX_MAE}")
