// http::response_fields: the header fields of a response, kept in order inside the object while
// they fit and in a block beyond; copies and moves keep every field.
#include <coronet/http/message.hpp>

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

namespace http = coronet::http;

namespace {

std::vector<std::pair<std::string, std::string>> listed(const http::response_fields& f) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [name, value] : f)
        out.emplace_back(name, value);
    return out;
}

// `n` fields "X-Field-<i>: value <i> ..." (long enough that a few pass the inline bytes).
http::response_fields numbered(int n) {
    http::response_fields f;
    for (int i = 0; i < n; ++i)
        f.add("X-Field-" + std::to_string(i), "value " + std::to_string(i) + " of the list");
    return f;
}

void check_numbered(const http::response_fields& f, int n) {
    REQUIRE(f.size() == static_cast<std::size_t>(n));
    auto l = listed(f);
    REQUIRE(l.size() == static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        CHECK(l[i].first == "X-Field-" + std::to_string(i));
        CHECK(l[i].second == "value " + std::to_string(i) + " of the list");
    }
}

} // namespace

TEST_SUITE("http.response_fields") {

    TEST_CASE("fields keep their order, repeats and empty values; get is case-insensitive") {
        http::response_fields f;
        CHECK(f.empty());
        CHECK(f.begin() == f.end());
        f.add("Content-Type", "text/plain");
        f.add("Set-Cookie", "a=1");
        f.add("Set-Cookie", "b=2");
        f.add("X-Empty", "");
        CHECK(f.size() == 4);
        CHECK(listed(f) ==
              std::vector<std::pair<std::string, std::string>>{{"Content-Type", "text/plain"},
                                                               {"Set-Cookie", "a=1"},
                                                               {"Set-Cookie", "b=2"},
                                                               {"X-Empty", ""}});
        bool found = false;
        CHECK(f.get("set-cookie", &found) == "a=1");
        CHECK(found);
        CHECK(f.get("x-empty", &found).empty());
        CHECK(found);
        CHECK(f.get("Missing", &found).empty());
        CHECK_FALSE(found);
        f.clear();
        CHECK(f.empty());
        CHECK(listed(f).empty());
        f.add("After", "clear");
        CHECK(listed(f) == std::vector<std::pair<std::string, std::string>>{{"After", "clear"}});
    }

    TEST_CASE("many fields and long values go past the inline bytes and stay intact") {
        for (int n : {1, 2, 3, 10, 200}) {
            CAPTURE(n);
            check_numbered(numbered(n), n);
        }
        http::response_fields f;
        const std::string big(100'000, 'v');
        f.add("X-Big", big);
        f.add("X-After", "small");
        CHECK(f.get("x-big") == big);
        CHECK(f.get("x-after") == "small");
    }

    TEST_CASE("copies and moves keep every field, inline or not, and leave the source usable") {
        for (int n : {0, 1, 40}) {
            CAPTURE(n);
            http::response_fields a = numbered(n);
            http::response_fields copy(a);
            check_numbered(copy, n);
            check_numbered(a, n);

            http::response_fields moved(std::move(a));
            check_numbered(moved, n);
            CHECK(a.empty()); // NOLINT(bugprone-use-after-move): moved-from is specified empty
            a.add("Reused", "yes");
            CHECK(a.get("reused") == "yes");

            http::response_fields assigned = numbered(3);
            assigned = copy;
            check_numbered(assigned, n);
            assigned = std::move(moved);
            check_numbered(assigned, n);
            auto& self = assigned;
            assigned = self;
            check_numbered(assigned, n);
            assigned = std::move(self);
            check_numbered(assigned, n);
        }
    }

    TEST_CASE("a response's set() adds to its fields and text() names its type") {
        http::response r = http::response::text("hi");
        r.set("X-One", std::string("1"));
        CHECK(r.headers.get("content-type") == "text/plain; charset=utf-8");
        CHECK(r.headers.get("x-one") == "1");
        http::response j = http::response::json("{}");
        CHECK(j.headers.get("Content-Type") == "application/json");
        CHECK(j.headers.size() == 1);
    }

    TEST_CASE("a field added from a view into the same fields survives the growth it causes") {
        // Blocks past the per-thread cache's 16 KiB are freed at once when the fields grow, so
        // a value read from the old block must be copied before it goes (ASan checks).
        http::response_fields f;
        const std::string a(20'000, 'a');
        f.add("A", a);
        f.add("B", std::string(12'000, 'b'));
        f.add("C", f.get("a"));
        CHECK(f.get("c") == a);
        // Grows again (past 64 KiB): name and value both read from the block being replaced.
        f.add(f.get("c").substr(0, 5), f.get("a"));
        CHECK(f.get("aaaaa") == a);
        f.add("D", std::string(20'000, 'd'));
        CHECK(f.get("c") == a);
        CHECK(f.size() == 5);
    }

} // TEST_SUITE
