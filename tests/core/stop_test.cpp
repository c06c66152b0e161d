#include <coronet/core/stop.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <vector>

namespace core = coronet::core;

namespace {

/// Appends its id to a log when invoked.
struct logging_callback : core::stop_callback_base {
    logging_callback(std::vector<int>* l, int i) noexcept
        : core::stop_callback_base(&fire), log(l), id(i) {}
    static void fire(core::stop_callback_base* self) noexcept {
        auto* me = static_cast<logging_callback*>(self);
        me->log->push_back(me->id);
    }
    std::vector<int>* log;
    int id;
};

/// Detaches another registration when invoked.
struct detaching_callback : core::stop_callback_base {
    explicit detaching_callback(core::stop_callback_base* v) noexcept
        : core::stop_callback_base(&fire), victim(v) {}
    static void fire(core::stop_callback_base* self) noexcept {
        static_cast<detaching_callback*>(self)->victim->detach();
    }
    core::stop_callback_base* victim;
};

} // namespace

TEST_SUITE("core.stop") {

    TEST_CASE("callbacks run once each in registration order") {
        core::stop_source src;
        std::vector<int> log;
        logging_callback a(&log, 1);
        logging_callback b(&log, 2);
        logging_callback c(&log, 3);
        CHECK(a.attach(src.token().source()));
        CHECK(b.attach(src.token().source()));
        CHECK(c.attach(src.token().source()));
        CHECK(a.attached());
        CHECK_FALSE(src.stop_requested());

        CHECK(src.request_stop());
        CHECK(log == std::vector<int>{1, 2, 3});
        CHECK(src.stop_requested());
        CHECK(src.token().stop_requested());
        CHECK_FALSE(a.attached());

        CHECK_FALSE(src.request_stop());
        CHECK(log == std::vector<int>{1, 2, 3});
    }

    TEST_CASE("a stop_callback calls its function on stop") {
        core::stop_source src;
        int calls = 0;
        core::stop_callback cb(src.token(), [&calls]() noexcept { ++calls; });
        CHECK(calls == 0);
        src.request_stop();
        CHECK(calls == 1);
        src.request_stop();
        CHECK(calls == 1);
    }

    TEST_CASE("a callback registered after stop was requested runs at once") {
        core::stop_source src;
        src.request_stop();
        int calls = 0;
        core::stop_callback cb(src.token(), [&calls]() noexcept { ++calls; });
        CHECK(calls == 1);

        std::vector<int> log;
        logging_callback late(&log, 7);
        CHECK_FALSE(late.attach(src.token().source()));
        CHECK(log == std::vector<int>{7});
        CHECK_FALSE(late.attached());
    }

    TEST_CASE("a callback registered while stop callbacks run is invoked at once") {
        core::stop_source src;
        std::vector<int> log;
        logging_callback late(&log, 2);
        core::stop_callback first(src.token(), [&]() noexcept {
            log.push_back(1);
            late.attach(src.token().source());
            log.push_back(3);
        });
        src.request_stop();
        CHECK(log == std::vector<int>{1, 2, 3});
    }

    TEST_CASE("a callback may detach another callback that has not run yet") {
        core::stop_source src;
        std::vector<int> log;
        logging_callback a(&log, 1);
        logging_callback victim(&log, 2);
        logging_callback c(&log, 3);
        detaching_callback d(&victim);
        d.attach(src.token().source());
        a.attach(src.token().source());
        victim.attach(src.token().source());
        c.attach(src.token().source());
        src.request_stop();
        CHECK(log == std::vector<int>{1, 3});
        CHECK_FALSE(victim.attached());
    }

    TEST_CASE("a callback may destroy another callback that has not run yet") {
        core::stop_source src;
        std::vector<int> log;
        auto victim = std::make_unique<logging_callback>(&log, 2);
        core::stop_callback killer(src.token(), [&]() noexcept { victim.reset(); });
        logging_callback after(&log, 3);
        victim->attach(src.token().source());
        after.attach(src.token().source());
        src.request_stop();
        CHECK(victim == nullptr);
        CHECK(log == std::vector<int>{3});
    }

    TEST_CASE("a callback may detach itself and callbacks already run") {
        core::stop_source src;
        std::vector<int> log;
        logging_callback a(&log, 1);
        a.attach(src.token().source());
        detaching_callback self_detach(nullptr);
        self_detach.victim = &self_detach;
        self_detach.attach(src.token().source());
        detaching_callback detach_done(&a);
        detach_done.attach(src.token().source());
        src.request_stop();
        CHECK(log == std::vector<int>{1});
    }

    TEST_CASE("destroying a callback unregisters it") {
        core::stop_source src;
        std::vector<int> log;
        logging_callback keep(&log, 1);
        keep.attach(src.token().source());
        {
            logging_callback gone(&log, 2);
            gone.attach(src.token().source());
            CHECK(gone.attached());
        }
        std::optional<core::stop_callback<void (*)() noexcept>> opt;
        static int static_calls = 0;
        static_calls = 0;
        opt.emplace(
            src.token(), +[]() noexcept { ++static_calls; });
        opt.reset();
        logging_callback last(&log, 3);
        last.attach(src.token().source());
        src.request_stop();
        CHECK(log == std::vector<int>{1, 3});
        CHECK(static_calls == 0);
    }

    TEST_CASE("detaching an unregistered or already invoked callback does nothing") {
        core::stop_source src;
        std::vector<int> log;
        logging_callback cb(&log, 1);
        cb.detach();
        CHECK_FALSE(cb.attached());
        CHECK(cb.attach(nullptr)); // a null source registers nothing
        CHECK_FALSE(cb.attached());
        cb.attach(src.token().source());
        src.request_stop();
        cb.detach();
        CHECK(log == std::vector<int>{1});
    }

    TEST_CASE("re-attaching moves a callback to the end of the order") {
        core::stop_source src;
        std::vector<int> log;
        logging_callback a(&log, 1);
        logging_callback b(&log, 2);
        a.attach(src.token().source());
        b.attach(src.token().source());
        a.attach(src.token().source());
        src.request_stop();
        CHECK(log == std::vector<int>{2, 1});
    }

    TEST_CASE("a linked source stops when its parent stops but not the other way round") {
        core::stop_source parent;
        core::stop_source child(parent.token());
        core::stop_source grandchild(child.token());
        std::vector<int> log;
        logging_callback on_child(&log, 1);
        on_child.attach(child.token().source());

        SUBCASE("the parent stops") {
            CHECK(parent.request_stop());
            CHECK(child.stop_requested());
            CHECK(grandchild.stop_requested());
            CHECK(log == std::vector<int>{1});
        }
        SUBCASE("the child stops") {
            CHECK(child.request_stop());
            CHECK(grandchild.stop_requested());
            CHECK_FALSE(parent.stop_requested());
            CHECK(log == std::vector<int>{1});
            parent.request_stop();
            CHECK(log == std::vector<int>{1});
        }
    }

    TEST_CASE("a source linked to a parent that already stopped starts stopped") {
        core::stop_source parent;
        parent.request_stop();
        core::stop_source child(parent.token());
        CHECK(child.stop_requested());
    }

    TEST_CASE("a linked source destroyed before its parent unregisters from it") {
        core::stop_source parent;
        std::vector<int> log;
        logging_callback before(&log, 1);
        before.attach(parent.token().source());
        {
            core::stop_source child(parent.token());
            logging_callback on_child(&log, 99);
            on_child.attach(child.token().source());
        }
        logging_callback after(&log, 2);
        after.attach(parent.token().source());
        parent.request_stop();
        CHECK(log == std::vector<int>{1, 2});
    }

    TEST_CASE("a source destroyed with callbacks still registered leaves them unregistered") {
        std::vector<int> log;
        logging_callback cb(&log, 1);
        {
            core::stop_source src;
            cb.attach(src.token().source());
            CHECK(cb.attached());
        }
        CHECK_FALSE(cb.attached());
        CHECK(log.empty());
    }

    TEST_CASE("a default token can never stop") {
        core::stop_token t;
        CHECK_FALSE(t.stop_possible());
        CHECK_FALSE(t.stop_requested());
        CHECK(t.source() == nullptr);
        int calls = 0;
        core::stop_callback cb(t, [&calls]() noexcept { ++calls; });
        CHECK(calls == 0);

        core::stop_source src;
        CHECK(src.token().stop_possible());
        CHECK(src.token().source() == &src);
    }

} // TEST_SUITE
