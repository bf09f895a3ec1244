# broker/ fuzz targets: every reader of text or records the broker does not
# write itself in the same run (config, policy, and records read back from
# LMDB, which are checked like network input). Seeds in corpus/<target>/:
# valid and broken inputs, plus inputs the fuzzer found worth keeping.
#
# As in proto.cmake: in a DIPX_FUZZ build the targets link their own copy of
# the broker modules they test, compiled with coverage
# (-fsanitize=fuzzer-no-link), and proto.cmake's instrumented dipx_proto_fuzz
# (CMake resolves that name when it generates, so the include order of these
# files does not matter).
set(broker_fuzz_srcs dipx_log.c dipx_config.c dipx_policy.c dipx_audit.c dipx_store.c)
if(DIPX_FUZZ)
  list(TRANSFORM broker_fuzz_srcs PREPEND ${PROJECT_SOURCE_DIR}/broker/)
  add_library(dipx_broker_fuzz STATIC ${broker_fuzz_srcs})
  target_include_directories(dipx_broker_fuzz PUBLIC ${PROJECT_SOURCE_DIR}/broker)
  target_compile_options(dipx_broker_fuzz PRIVATE -fsanitize=fuzzer-no-link)
  target_link_libraries(dipx_broker_fuzz PUBLIC dipx_proto_fuzz PkgConfig::LMDB PkgConfig::INIH
    PkgConfig::JANSSON PkgConfig::SODIUM)
  set(broker_fuzz_lib dipx_broker_fuzz)
else()
  set(broker_fuzz_lib dipx_broker)
endif()

foreach(t fuzz_config fuzz_policy fuzz_records)
  dipx_fuzz(${t} SOURCE ${CMAKE_CURRENT_LIST_DIR}/${t}.c LIBS ${broker_fuzz_lib})
endforeach()
