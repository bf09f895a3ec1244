# broker/ fuzz targets: every reader of text or records the broker does not
# write itself in the same run (config, policy, and records read back from
# LMDB, which are checked like network input). Seeds in corpus/<target>/:
# valid and broken inputs, plus inputs the fuzzer found worth keeping.
# A DIPX_FUZZ build instruments every library (top-level CMakeLists.txt), so
# the targets link dipx_broker as it is.
foreach(t fuzz_config fuzz_policy fuzz_records)
  dipx_fuzz(${t} SOURCE ${CMAKE_CURRENT_LIST_DIR}/${t}.c LIBS dipx_broker)
endforeach()
