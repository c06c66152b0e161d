#include <coronet/core/intrusive_list.hpp>

#include <doctest/doctest.h>

#include <optional>
#include <utility>
#include <vector>

namespace core = coronet::core;

namespace {

struct by_age {};

struct item : core::intrusive_list_hook<>, core::intrusive_list_hook<by_age> {
    explicit item(int v) noexcept : value(v) {}
    int value;
};

template <class Tag = void>
std::vector<int> values(const core::intrusive_list<item, Tag>& l) {
    std::vector<int> out;
    for (const item& i : l)
        out.push_back(i.value);
    return out;
}

} // namespace

TEST_SUITE("core.intrusive_list") {

    TEST_CASE("elements come out in the order they went in and can be erased from the middle") {
        item a(1), b(2), c(3), d(4);
        core::intrusive_list<item> l;
        CHECK(l.empty());
        l.push_back(b);
        l.push_back(c);
        l.push_front(a);
        l.push_back(d);
        CHECK(values(l) == std::vector<int>{1, 2, 3, 4});
        CHECK(l.size() == 4);
        CHECK(&l.front() == &a);
        CHECK(&l.back() == &d);
        l.erase(c);
        CHECK_FALSE(static_cast<core::intrusive_list_hook<>&>(c).is_linked());
        CHECK(values(l) == std::vector<int>{1, 2, 4});
        CHECK(l.pop_front() == &a);
        CHECK(l.pop_front() == &b);
        CHECK(l.pop_front() == &d);
        CHECK(l.pop_front() == nullptr);
        CHECK(l.empty());
    }

    TEST_CASE("an element destroyed while linked leaves the list intact") {
        core::intrusive_list<item> l;
        item a(1);
        {
            item b(2);
            l.push_back(a);
            l.push_back(b);
            item c(3);
            l.push_back(c);
        }
        CHECK(values(l) == std::vector<int>{1});
        l.clear();
        CHECK(l.empty());
    }

    TEST_CASE("one object can be in two lists of different tags at once") {
        item a(1), b(2);
        core::intrusive_list<item> by_arrival;
        core::intrusive_list<item, by_age> oldest_first;
        by_arrival.push_back(a);
        by_arrival.push_back(b);
        oldest_first.push_back(b);
        oldest_first.push_back(a);
        CHECK(values(by_arrival) == std::vector<int>{1, 2});
        CHECK(values(oldest_first) == std::vector<int>{2, 1});
        by_arrival.erase(a);
        CHECK(values(by_arrival) == std::vector<int>{2});
        CHECK(values(oldest_first) == std::vector<int>{2, 1});
    }

    TEST_CASE("a moved list takes every element and leaves the source empty") {
        item a(1), b(2), c(3);
        core::intrusive_list<item> src;
        src.push_back(a);
        src.push_back(b);
        core::intrusive_list<item> dst(std::move(src));
        CHECK(src.empty());
        CHECK(values(dst) == std::vector<int>{1, 2});
        src.push_back(c);
        dst = std::move(src);
        CHECK(values(dst) == std::vector<int>{3});
        CHECK_FALSE(static_cast<core::intrusive_list_hook<>&>(a).is_linked());
        dst.erase(c);
        dst.push_back(a); // unlinked elements can join a list again
        CHECK(values(dst) == std::vector<int>{1});
    }

    TEST_CASE("a destroyed list leaves its elements unlinked") {
        item a(1);
        {
            core::intrusive_list<item> l;
            l.push_back(a);
        }
        CHECK_FALSE(static_cast<core::intrusive_list_hook<>&>(a).is_linked());
    }

} // TEST_SUITE
