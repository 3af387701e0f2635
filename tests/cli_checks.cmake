# The CLI: errors say what was wrong and exit non-zero; counting, CSV, eval, bench and info work.
set(failures 0)
function(expect name rc_want out_regex)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(all "${out}${err}")
  if(rc_want STREQUAL "nonzero")
    if(rc EQUAL 0)
      message(SEND_ERROR "${name}: expected a non-zero exit, got 0\n${all}")
    endif()
  elseif(NOT rc EQUAL rc_want)
    message(SEND_ERROR "${name}: expected exit ${rc_want}, got ${rc}\n${all}")
  endif()
  if(NOT all MATCHES "${out_regex}")
    message(SEND_ERROR "${name}: output does not match '${out_regex}'\n${all}")
  endif()
  message(STATUS "ok: ${name}")
endfunction()

file(REMOVE_RECURSE ${SCRATCH})
file(MAKE_DIRECTORY ${SCRATCH})
expect("no arguments" 2 "usage" ${CLI})
expect("unknown command" 2 "unknown command" ${CLI} frobnicate)
expect("info" 0 "LibTorch" ${CLI} info)
expect("count without model" 1 "--model" ${CLI} count ${DIR}/data)
expect("count with a missing model" 1 "CELLCOUNT_ERR_IO.*/nonexistent" ${CLI} count --model /nonexistent ${DIR}/data)
expect("count a missing image" 1 "does not exist" ${CLI} count --model ${DIR}/model /nonexistent.png)
expect("count a folder with truth" 0 "MAE [0-9.]+ over 24" ${CLI} count --model ${DIR}/model ${DIR}/data
       --csv ${SCRATCH}/counts.csv --overlays ${SCRATCH}/overlays --threads 2)
expect("csv is never overwritten" 1 "exists" ${CLI} count --model ${DIR}/model ${DIR}/data --csv ${SCRATCH}/counts.csv)
file(STRINGS ${SCRATCH}/counts.csv rows)
list(LENGTH rows n)
if(NOT n EQUAL 25)
  message(SEND_ERROR "counts.csv: expected header + 24 rows, got ${n}")
endif()
file(GLOB overlays ${SCRATCH}/overlays/*_overlay.png)
list(LENGTH overlays n)
if(NOT n EQUAL 24)
  message(SEND_ERROR "expected 24 overlays, got ${n}")
endif()
expect("bad device" 1 "CELLCOUNT_ERR_DEVICE" ${CLI} count --model ${DIR}/model --device tpu ${DIR}/data)
expect("eval" 0 "\"mae\"" ${CLI} eval --model ${DIR}/model --dataset ${DIR}/data --split test)
expect("eval unknown field" 1 "unknown field" ${CLI} eval --model ${DIR}/model --dataset ${DIR}/data --splt test)
expect("train unknown method" 1 "CELLCOUNT_ERR_WRONG_METHOD" ${CLI} train --method nope --dataset ${DIR}/data --out ${SCRATCH}/m)
expect("bench" 0 "ms_per_megapixel" ${CLI} bench --model ${DIR}/model --size 256 --repeat 1)
# --- issue 22: a model of several classes (llp) gives per-class counts and proportions in the CSV (one "count
# <class>" then one "fraction <class>" column per class, in the model's order, before warnings, as the Fiji and
# napari tables) and the run's per-class totals and shares.
expect("count llp per class" 0 "per class: lymphocyte [0-9.]+ \\([0-9.]+ %\\), granulocyte [0-9.]+ \\([0-9.]+ %\\), monocyte"
       ${CLI} count --model ${SOURCE_DIR}/models/llp-wbc ${SOURCE_DIR}/samples/llp-wbc --threads 2
       --csv ${SCRATCH}/llp.csv --overwrite)
file(STRINGS ${SCRATCH}/llp.csv lrows)
list(GET lrows 0 lhead)
if(NOT lhead MATCHES ",diameter,count lymphocyte,count granulocyte,count monocyte,fraction lymphocyte,fraction granulocyte,fraction monocyte,warnings$")
  message(SEND_ERROR "llp counts CSV: want count and fraction columns per class before warnings: ${lhead}")
endif()
list(GET lrows 1 lrow)
# the class counts (llp counts whole detections, "12.000") and fractions (4 decimals) just before warnings
if(NOT lrow MATCHES "^[^,]*,1,([0-9]+)\\.000,.*,([0-9]+)\\.000,([0-9]+)\\.000,([0-9]+)\\.000,([01]\\.[0-9][0-9][0-9][0-9]),([01]\\.[0-9][0-9][0-9][0-9]),([01]\\.[0-9][0-9][0-9][0-9]),[a-z_ ]*$")
  message(SEND_ERROR "llp counts CSV row: want whole class counts and their fractions before warnings: ${lrow}")
endif()
set(total ${CMAKE_MATCH_1})
set(cnt ${CMAKE_MATCH_2} ${CMAKE_MATCH_3} ${CMAKE_MATCH_4})
set(frac ${CMAKE_MATCH_5} ${CMAKE_MATCH_6} ${CMAKE_MATCH_7})
math(EXPR csum "${CMAKE_MATCH_2} + ${CMAKE_MATCH_3} + ${CMAKE_MATCH_4}")
if(NOT csum EQUAL total)
  message(SEND_ERROR "llp counts CSV: the class counts add up to ${csum}, the count is ${total}: ${lrow}")
endif()
foreach(k 0 1 2)
  list(GET cnt ${k} c)
  list(GET frac ${k} f)
  string(REPLACE "." "" f "${f}")
  string(REGEX REPLACE "^0+([0-9])" "\\1" f "${f}")  # 10000 x the fraction, without leading zeros
  math(EXPR want "(20000 * ${c} + ${total}) / (2 * ${total})")  # 10000 c / total, rounded
  math(EXPR diff "${f} - ${want}")
  if(diff GREATER 1 OR diff LESS -1)
    message(SEND_ERROR "llp counts CSV: class ${k} fraction ${f}/10000, want ${c}/${total}: ${lrow}")
  endif()
endforeach()
# --- issue 22: an llp model's bench also times the exact VP solver at the issue's sizes (N 500 K 3, N 5000 K 5).
expect("bench llp times the VP solver" 0 "\"method\": \"llp\".*\"vp_solver\".*\"k\": 3,.*\"n\": 500,.*\"k\": 5,.*\"n\": 5000,"
       ${CLI} bench --model ${SOURCE_DIR}/models/llp-wbc --size 64 --repeat 1)
expect("defaults" 0 "\"epochs\"" ${CLI} defaults --method selftest --kind train)

# --- issue 20: bench --repeat 0 or -1 segfaulted (the median of no timings); now a clear error.
expect("bench --repeat 0" 1 "--repeat must be at least 1.*got 0" ${CLI} bench --model ${DIR}/model --size 64 --repeat 0)
expect("bench --repeat -1" 1 "--repeat must be at least 1.*got -1" ${CLI} bench --model ${DIR}/model --size 64 --repeat -1)

# --- issue 21 item 6: count refuses options it does not know (a typo ran, exited 0 and wrote nothing) ...
expect("count unknown options" 1 "unknown option --cvs" ${CLI} count --model ${DIR}/model ${DIR}/data/images/cells_00000.png
       --cvs ${SCRATCH}/typo.csv --overlay ${SCRATCH}/typo_ov)
if(EXISTS ${SCRATCH}/typo.csv OR EXISTS ${SCRATCH}/typo_ov)
  message(SEND_ERROR "count with unknown options wrote something")
endif()
# ... names the option and the value when a number does not parse (it printed only "stoi") ...
expect("count non-numeric tile" 1 "--tile expects an integer, got 'abc'" ${CLI} count --model ${DIR}/model --tile abc
       ${DIR}/data/images/cells_00000.png)
expect("count non-numeric threshold" 1 "--threshold expects a number, got '0.x'" ${CLI} count --model ${DIR}/model
       --threshold 0.x ${DIR}/data/images/cells_00000.png)
expect("count non-numeric threads" 1 "--threads expects an integer, got 'two'" ${CLI} count --model ${DIR}/model
       --threads two ${DIR}/data/images/cells_00000.png)
# ... and one unreadable file in a folder no longer aborts the run: it is reported and skipped, the others are
# counted and written, and the run exits non-zero at the end.
file(MAKE_DIRECTORY ${SCRATCH}/mixed)
foreach(i 00000 00001 00002)
  file(COPY ${DIR}/data/images/cells_${i}.png DESTINATION ${SCRATCH}/mixed)
endforeach()
file(WRITE ${SCRATCH}/mixed/cells_00001b.png "this is not a PNG")
expect("count a folder with a bad file" 1 "skipped '[^']*cells_00001b.png': CELLCOUNT_ERR_IO.*1 of 4 file"
       ${CLI} count --model ${DIR}/model ${SCRATCH}/mixed --csv ${SCRATCH}/mixed.csv --overlays ${SCRATCH}/mixed_ov)
file(STRINGS ${SCRATCH}/mixed.csv rows)
list(LENGTH rows n)
if(NOT n EQUAL 4)
  message(SEND_ERROR "mixed.csv: expected header + the 3 good images, got ${n} lines")
endif()
file(GLOB overlays ${SCRATCH}/mixed_ov/*_overlay.png)
list(LENGTH overlays n)
if(NOT n EQUAL 3)
  message(SEND_ERROR "mixed folder: expected 3 overlays, got ${n}")
endif()

# --- method options: listed with their metadata, and checked by the library when given to count.
expect("options of exemplar predict" 0 "\"name\": \"mask_threshold\"" ${CLI} options --method exemplar --kind predict)
expect("count with an unknown method option" 1 "CELLCOUNT_ERR_INVALID_ARGUMENT.*unknown option \"mask_threshold\""
       ${CLI} count --model ${DIR}/model --options "{\"mask_threshold\": 0.5}" ${DIR}/data/images/cells_00000.png)
expect("density written as a float TIFF" 0 "1 image" ${CLI} count --model ${DIR}/model --density ${SCRATCH}/density
       ${DIR}/data/images/cells_00000.png)
if(NOT EXISTS ${SCRATCH}/density/cells_00000_density.tif)
  message(SEND_ERROR "count --density wrote no cells_00000_density.tif")
endif()
# --- issue 21 items 8, 9 and the counted area: the 0-1 threshold, calibration, per-point measurements, labels;
# all computed by the library (cellcount.h, measurements), the CLI only writes them.
expect("count relative threshold out of range" 1 "peak_threshold_relative.*\\[0, 1\\]" ${CLI} count
       --model ${DIR}/model --threshold-relative 1.5 ${DIR}/data/images/cells_00000.png)
expect("count relative and absolute threshold" 1 "not both" ${CLI} count --model ${DIR}/model --threshold-relative 0.3
       --threshold 0.01 ${DIR}/data/images/cells_00000.png)
expect("count relative threshold not a number" 1 "--threshold-relative expects a number, got 'x'" ${CLI} count
       --model ${DIR}/model --threshold-relative x ${DIR}/data/images/cells_00000.png)
expect("count unit without pixel size" 1 "--unit needs --pixel-size" ${CLI} count --model ${DIR}/model --unit um
       ${DIR}/data/images/cells_00000.png)
expect("count pixel size 0" 1 "--pixel-size expects sizes > 0" ${CLI} count --model ${DIR}/model --pixel-size 0
       ${DIR}/data/images/cells_00000.png)
expect("count with calibration, points and labels" 0 "no label images: method selftest gives no mask" ${CLI} count
       --model ${DIR}/model --threshold-relative 0 --pixel-size 0.5,0.25 --unit um --csv ${SCRATCH}/measured.csv
       --points ${SCRATCH}/points.csv --labels ${SCRATCH}/labels ${DIR}/data/images/cells_00000.png)
file(STRINGS ${SCRATCH}/measured.csv mrows)
list(GET mrows 0 mhead)
if(NOT mhead MATCHES ",counted_pixels,area,unit,cells_per_unit2,diameter,warnings$")
  message(SEND_ERROR "counts CSV header lacks the library's measurements: ${mhead}")
endif()
list(GET mrows 1 mrow)
# 64 x 64 pixels of 0.5 x 0.25 um: 4096 pixels, 512 um2
if(NOT mrow MATCHES ",4096,512(\\.0*)?,um,[0-9.e-]+,,[a-z_ ]*$")  # no diameter: the model has no cell size
  message(SEND_ERROR "counts CSV row: want 4096 pixels, area 512 um2 and cells per um2: ${mrow}")
endif()
string(REGEX MATCH "^[^,]*,1,[^,]*,[^,]*,[^,]*,([0-9]+)," _ "${mrow}")
set(npts ${CMAKE_MATCH_1})
file(STRINGS ${SCRATCH}/points.csv prows)
list(LENGTH prows nprows)
math(EXPR nprows "${nprows} - 1")
list(GET prows 0 phead)
if(NOT phead STREQUAL "image,slice,x,y,class,score,intensity,label" OR NOT nprows EQUAL npts OR npts EQUAL 0)
  message(SEND_ERROR "points CSV: header '${phead}', ${nprows} rows for ${npts} points")
endif()
if(npts GREATER 0)
  list(GET prows 1 prow)
  if(NOT prow MATCHES ",[0-9.]+,0$")
    message(SEND_ERROR "points CSV row: want an intensity and label 0 (no mask): ${prow}")
  endif()
endif()

expect("split through the library" 0 "wrote .*: [0-9]+ train, [0-9]+ test, [0-9]+ val" ${CLI} split
       --dataset ${DIR}/data --out ${SCRATCH}/split.csv --ratios 2,1,1 --seed 3)
expect("split never overwrites" 1 "CELLCOUNT_ERR_IO" ${CLI} split --dataset ${DIR}/data --out ${SCRATCH}/split.csv)
expect("split bad ratios" 1 "--ratios expects a number, got 'x'" ${CLI} split --dataset ${DIR}/data
       --out ${SCRATCH}/split2.csv --ratios 1,x,1)

# --- issue 21 item 4: the CLI waits passively in OpenMP unless told otherwise (spinning libgomp threads made a
# 256x256 count 5-15x slower on a busy 2-core machine). libgomp reads OMP_WAIT_POLICY once, when it is loaded,
# and OMP_DISPLAY_ENV=verbose makes it print what it read: GOMP_SPINCOUNT is 0 under PASSIVE, 300000 when the
# variable is unset, 30 billion under ACTIVE (a user's explicit value is kept). Another OpenMP runtime prints no
# GOMP_SPINCOUNT: then there is nothing to check here.
execute_process(COMMAND ${CMAKE_COMMAND} -E env --unset=OMP_WAIT_POLICY --unset=GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose
                        ${CLI} info RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if("${out}${err}" MATCHES "GOMP_SPINCOUNT = '([0-9]+)'")
  if(NOT CMAKE_MATCH_1 STREQUAL "0")
    message(SEND_ERROR "OpenMP wait policy: without OMP_WAIT_POLICY libgomp spins (GOMP_SPINCOUNT ${CMAKE_MATCH_1}), "
                       "expected the CLI to ask for PASSIVE (0)")
  else()
    message(STATUS "ok: OpenMP waits passively by default")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -E env OMP_WAIT_POLICY=ACTIVE --unset=GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose
                          ${CLI} info RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT "${out}${err}" MATCHES "GOMP_SPINCOUNT = '([0-9]+)'" OR CMAKE_MATCH_1 STREQUAL "0")
    message(SEND_ERROR "OpenMP wait policy: the user's OMP_WAIT_POLICY=ACTIVE was not kept\n${out}${err}")
  else()
    message(STATUS "ok: a user's OMP_WAIT_POLICY is kept")
  endif()
else()
  message(STATUS "note: the OpenMP runtime is not libgomp (no GOMP_SPINCOUNT in OMP_DISPLAY_ENV); wait policy not checked")
endif()
