# ctest driver: installs the r1 build tree to a scratch prefix, then configures, builds and runs the
# consumer project in all three modes. Invoked with -DR1_BUILD_DIR -DR1_SOURCE_DIR -DWORK_DIR.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install ${R1_BUILD_DIR} --prefix ${WORK_DIR}/prefix)

foreach(mode find_package add_subdirectory fetchcontent)
  set(b ${WORK_DIR}/${mode})
  run(${CMAKE_COMMAND} -S ${R1_SOURCE_DIR}/tests/package/consumer -B ${b}
      -DR1_CONSUMER_MODE=${mode} -DR1_SOURCE_DIR=${R1_SOURCE_DIR}
      -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release)
  run(${CMAKE_COMMAND} --build ${b} --target consumer)
  run(${b}/consumer)
  message(STATUS "${mode}: ${last_output}")
endforeach()
