// The one doctest main, compiled once (target coronet_doctest_main) and linked into every
// <layer>_tests executable. Test files include <doctest/doctest.h> and never define
// DOCTEST_CONFIG_IMPLEMENT or DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN themselves.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
