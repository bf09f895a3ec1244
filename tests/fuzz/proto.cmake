# proto/ fuzz targets: frames, envelopes, sealed plaintexts. Seeds in
# corpus/<target>/ are the golden vectors and test_malformed's tables
# (DIPX_DUMP_CORPUS, see tests/unit/test_malformed.c), plus inputs the fuzzer
# found worth keeping.
#
# A DIPX_FUZZ build instruments every library (top-level CMakeLists.txt), so
# the targets link dipx_proto as it is. MAX_LEN: past 65,535, where msgpack's
# 16-bit lengths give way to 32-bit ones (bodies go up to 1 MiB, beyond
# what is worth mutating).
foreach(t fuzz_frame fuzz_envelope fuzz_inner)
  dipx_fuzz(${t} SOURCE ${CMAKE_CURRENT_LIST_DIR}/${t}.c LIBS dipx_proto MAX_LEN 70000)
  target_sources(${t} PRIVATE ${PROJECT_SOURCE_DIR}/tests/unit/proto_fixture.c)
  target_compile_definitions(${t} PRIVATE FX_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endforeach()
