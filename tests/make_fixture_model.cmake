# Makes the fixture model the ABI tests load: 24 synthetic 64x64 images, then the selftest method
# trained on them for a few seconds. Deterministic (seeds fixed).
file(REMOVE_RECURSE ${DIR})
execute_process(COMMAND ${CLI} synth --out ${DIR}/data --n 24 --width 64 --height 64 --min-cells 3
                        --max-cells 12 --seed 7 --threads 2
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cellcount synth failed (${rc})")
endif()
execute_process(COMMAND ${CLI} train --method selftest --dataset ${DIR}/data --out ${DIR}/model --epochs 60
                        --seed 1 --threads 2
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cellcount train failed (${rc})")
endif()
