# Fuzz target of the cesql module: compiles the input and evaluates it against a fixed event.
weir_fuzz_target(cesql ${CMAKE_CURRENT_SOURCE_DIR}/cesql.c weir_cesql)
