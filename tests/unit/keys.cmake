# keys/ tests: identities, cards, registry (test_keys); and the key-management
# CLI subcommands (test_keys_cli), linked straight from client/dipx_cli_keys.c
# so they are tested without the rest of the CLI.
dipx_test(test_keys SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_keys.c LIBS dipx_keys LABELS keys)
# test_identity_dir_sync_fails makes the keys library's directory syncs fail.
target_link_options(test_keys PRIVATE -Wl,--wrap=fsync)
dipx_test(test_keys_cli
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_keys_cli.c ${PROJECT_SOURCE_DIR}/client/dipx_cli_keys.c
    ${PROJECT_SOURCE_DIR}/client/dipx_cli_args.c
  LIBS dipx_keys LABELS keys)
target_include_directories(test_keys_cli PRIVATE ${PROJECT_SOURCE_DIR}/client)
