# Fuzz target of the script module: compiles the input as a filter and runs it on fixed events.
weir_fuzz_target(script ${CMAKE_CURRENT_SOURCE_DIR}/script.c weir_script)
# Coverage instrumentation for the engine and for Duktape, so that libFuzzer learns which scripts
# reach new parts of either.
target_compile_options(weir_script PRIVATE -fsanitize=fuzzer-no-link)
target_compile_options(weir_duktape PRIVATE -fsanitize=fuzzer-no-link)
