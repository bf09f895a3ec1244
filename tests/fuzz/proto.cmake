# proto/ fuzz targets: frames, envelopes, sealed plaintexts. Seeds in
# corpus/<target>/ are the golden vectors and test_malformed's tables
# (DIPX_DUMP_CORPUS, see tests/unit/test_malformed.c), plus inputs the fuzzer
# found worth keeping.
#
# In a DIPX_FUZZ build the fuzz targets link their own copy of dipx_proto
# compiled with coverage (-fsanitize=fuzzer-no-link): without it libFuzzer
# would see only the target's few lines and fuzz blind. The copy keeps the
# instrumentation away from every other program in that build.
if(DIPX_FUZZ)
  get_target_property(proto_srcs dipx_proto SOURCES)
  get_target_property(proto_dir dipx_proto SOURCE_DIR)
  list(TRANSFORM proto_srcs PREPEND ${proto_dir}/)
  add_library(dipx_proto_fuzz STATIC ${proto_srcs})
  target_include_directories(dipx_proto_fuzz PUBLIC ${proto_dir} ${PROJECT_SOURCE_DIR}/include)
  target_compile_definitions(dipx_proto_fuzz PRIVATE DIPX_BUILDING)
  target_compile_options(dipx_proto_fuzz PRIVATE -fsanitize=fuzzer-no-link)
  target_link_libraries(dipx_proto_fuzz PUBLIC PkgConfig::MSGPACK PkgConfig::SODIUM)
  set(proto_fuzz_lib dipx_proto_fuzz)
else()
  set(proto_fuzz_lib dipx_proto)
endif()

foreach(t fuzz_frame fuzz_envelope fuzz_inner)
  dipx_fuzz(${t} SOURCE ${CMAKE_CURRENT_LIST_DIR}/${t}.c LIBS ${proto_fuzz_lib})
  target_sources(${t} PRIVATE ${PROJECT_SOURCE_DIR}/tests/unit/proto_fixture.c)
  target_compile_definitions(${t} PRIVATE FX_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endforeach()
