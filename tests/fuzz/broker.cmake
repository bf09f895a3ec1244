# broker/ fuzz targets: every reader of text or records the broker does not
# write itself in the same run (config, policy, and records read back from
# LMDB, which are checked like network input). Seeds in corpus/<target>/:
# valid and broken inputs, plus inputs the fuzzer found worth keeping.
# A DIPX_FUZZ build instruments every library (top-level CMakeLists.txt), so
# the targets link dipx_broker as it is.
# MAX_LEN: above each reader's limit (config 64 KiB; a policy's 1,024 rules;
# an audit record's 4,096 bytes).
dipx_fuzz(fuzz_config SOURCE ${CMAKE_CURRENT_LIST_DIR}/fuzz_config.c LIBS dipx_broker
  MAX_LEN 70000)
dipx_fuzz(fuzz_policy SOURCE ${CMAKE_CURRENT_LIST_DIR}/fuzz_policy.c LIBS dipx_broker
  MAX_LEN 70000)
dipx_fuzz(fuzz_records SOURCE ${CMAKE_CURRENT_LIST_DIR}/fuzz_records.c LIBS dipx_broker
  MAX_LEN 8192)
