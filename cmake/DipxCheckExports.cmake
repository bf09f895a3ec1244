# DipxCheckExports.cmake - fails unless the dynamic symbols that LIB defines are
# exactly the names in EXPECTED (one a line: the DIPX_EXPORT declarations of
# include/, listed by client/CMakeLists.txt). Run with cmake -P.
find_program(NM nm REQUIRED)
execute_process(COMMAND ${NM} -D --defined-only ${LIB}
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nm failed on ${LIB}")
endif()
string(REGEX MATCHALL "[^\n]+" lines "${out}")
set(actual)
foreach(line ${lines})
  if(line MATCHES " ([A-Za-z_][A-Za-z0-9_@.]*)$")
    list(APPEND actual ${CMAKE_MATCH_1})
  endif()
endforeach()
list(SORT actual)
file(STRINGS ${EXPECTED} expected)
list(SORT expected)
if(NOT actual STREQUAL expected)
  set(extra ${actual})
  list(REMOVE_ITEM extra ${expected})
  set(missing ${expected})
  list(REMOVE_ITEM missing ${actual})
  message(FATAL_ERROR "exported symbols differ from the public API\n"
                      "  exported but not public: ${extra}\n"
                      "  public but not exported: ${missing}")
endif()
list(LENGTH actual n)
message(STATUS "${LIB}: exactly the ${n} public functions are exported")
