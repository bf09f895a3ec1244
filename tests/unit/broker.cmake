# broker/ tests: the policy file and the DIP flow table (test_policy), the
# config table, its INI parser and broker/dipxd.conf.example (test_config),
# and the LMDB store with its record decoders (test_store).
foreach(t test_policy test_config test_store)
  dipx_test(${t} SOURCES ${CMAKE_CURRENT_LIST_DIR}/${t}.c LIBS dipx_broker LABELS broker)
  # Where broker/policy.conf and the example config are when the test runs
  # outside ctest (no DIPX_SOURCE_DIR).
  target_compile_definitions(${t} PRIVATE TEST_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endforeach()
