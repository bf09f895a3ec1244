# proto/ tests: golden vectors (test_vectors) and malformed input tables with
# the envelope crypto negatives (test_malformed). Both share proto_fixture.c.
set(proto_fixture ${CMAKE_CURRENT_LIST_DIR}/proto_fixture.c)

dipx_test(test_vectors SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_vectors.c ${proto_fixture}
  LIBS dipx_proto LABELS proto)
dipx_test(test_malformed SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_malformed.c ${proto_fixture}
  LIBS dipx_proto LABELS proto)
foreach(t test_vectors test_malformed)
  # Where the vectors are when the test runs outside ctest (no DIPX_SOURCE_DIR).
  target_compile_definitions(${t} PRIVATE FX_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_include_directories(${t} PRIVATE ${PROJECT_SOURCE_DIR}/proto)
endforeach()
# test_malformed counts (and fails) the allocations made by dipx_proto and the
# test itself: every malformed input must be rejected having allocated nothing.
target_link_options(test_malformed PRIVATE
  -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc)
