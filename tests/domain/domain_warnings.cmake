# Out-of-domain warnings through the CLI (issue 24), with the shipped models:
#   CASE=samples  every shipped model counts its own samples/<model> images with no warning (CSV column
#                 "warnings" empty, no "cellcount warning" line on stderr);
#   CASE=wrong    the wrong-model cases of the issue warn, in the CSV and on stderr naming the image:
#                 dcl-adi (bright-field adipocytes) on a VGG fluorescence image, and dcl-vgg (fluorescence) on
#                 an H&E image of MBM (test images of ../shared/datasets; "DOMAIN-SKIP" when it is absent).
# Usage: cmake -DCLI=... -DSOURCE_DIR=<repo> -DCASE=samples|wrong -DOUT=<scratch dir> -P domain_warnings.cmake
cmake_minimum_required(VERSION 3.18)
file(MAKE_DIRECTORY ${OUT})

# Counts `input` with `model`; sets <prefix>_warnings (the CSV's warnings cells, one list entry per row; the
# codes within a cell space-separated) and <prefix>_err (stderr).
function(count_with prefix model input)
  string(MAKE_C_IDENTIFIER "${prefix}" id)
  set(csv ${OUT}/${id}.csv)
  execute_process(COMMAND ${CLI} count --model ${SOURCE_DIR}/models/${model} ${input} --threads 2 --csv ${csv} --overwrite
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${model} on ${input} failed (${rc}): ${err}")
  endif()
  file(STRINGS ${csv} rows)
  list(POP_FRONT rows header)
  if(NOT header MATCHES ",warnings$")
    message(FATAL_ERROR "the counts CSV has no warnings column: ${header}")
  endif()
  set(cells "")
  foreach(row ${rows})
    string(REGEX MATCH ",([a-z_ ]*)$" _ "${row}")
    list(APPEND cells "${CMAKE_MATCH_1}")
  endforeach()
  set(${prefix}_warnings "${cells}" PARENT_SCOPE)
  set(${prefix}_err "${err}" PARENT_SCOPE)
  message("${model} on ${input}: warnings per row '${cells}'")
endfunction()

if(CASE STREQUAL "samples")
  file(GLOB models RELATIVE ${SOURCE_DIR}/samples ${SOURCE_DIR}/samples/*)
  foreach(model ${models})
    if(NOT IS_DIRECTORY ${SOURCE_DIR}/samples/${model} OR NOT EXISTS ${SOURCE_DIR}/models/${model}/model.json)
      continue()
    endif()
    count_with(own ${model} ${SOURCE_DIR}/samples/${model})
    if(own_warnings MATCHES "[a-z]" OR own_err MATCHES "cellcount warning")
      message(SEND_ERROR "${model} warns on its own samples: ${own_warnings}\n${own_err}")
    endif()
  endforeach()
elseif(CASE STREQUAL "wrong")
  # Test-split images of ../shared/datasets (research data, never in the repository; the VGG samples here are
  # grey, which dcl-adi refuses outright: it takes RGB).
  set(vgg ${SOURCE_DIR}/../shared/datasets/vgg_cells/cells/001cell.png)
  set(he ${SOURCE_DIR}/../shared/datasets/mbm/MBM_data/BM_GRAZ_HE_0002_01_000.png)
  if(NOT EXISTS ${vgg} OR NOT EXISTS ${he})
    message("DOMAIN-SKIP: ${vgg} or ${he} is absent (research data beside the repository)")
    return()
  endif()
  count_with(adi dcl-adi ${vgg})
  if(NOT adi_warnings MATCHES "[a-z]" OR NOT adi_err MATCHES "cellcount warning: '[^']*001cell.png': ")
    message(SEND_ERROR "dcl-adi on a VGG fluorescence image gave no warning naming the image: '${adi_warnings}'\n${adi_err}")
  endif()
  count_with(he dcl-vgg ${he})
  if(NOT he_warnings MATCHES "intensity_out_of_domain|cell_density_out_of_domain")
    message(SEND_ERROR "dcl-vgg on an H&E image gave no out-of-domain warning: '${he_warnings}'\n${he_err}")
  endif()
else()
  message(FATAL_ERROR "CASE must be samples or wrong")
endif()
