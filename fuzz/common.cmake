# Fuzz target of the common module's text parsers: RFC 3339 timestamps and ISO 8601 durations.
weir_fuzz_target(common_time ${CMAKE_CURRENT_SOURCE_DIR}/common_time.c weir_common)
