#include <coronet/core/frame_allocator.hpp>
#include <coronet/core/loop.hpp>
#include <coronet/core/timer.hpp>

#include "backend/backend.hpp"
#include "loop_access.hpp"
#include "post_queue.hpp"

#include <malloc.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace coronet::core {

namespace detail {
bool probe_uring() noexcept;

void op_canceller::fire(stop_callback_base* self) noexcept {
    io_op* op = static_cast<op_canceller*>(self)->op;
    loop_access::cancel(*op->owner, *op);
}
} // namespace detail

namespace {
thread_local loop* current_loop = nullptr;
// Pooled frames a loop keeps per size class when it trims after a burst.
constexpr std::size_t idle_frames_per_class = 32;

backend_kind choose_backend(const loop_options& opts) {
    if (opts.backend)
        return *opts.backend;
    if (const char* env = std::getenv("CORONET_BACKEND")) {
        std::string v(env);
        if (v == "epoll")
            return backend_kind::epoll;
        if (v == "uring" || v == "io_uring")
            return backend_kind::uring;
    }
    return uring_available() ? backend_kind::uring : backend_kind::epoll;
}
} // namespace

std::string_view to_string(backend_kind k) noexcept {
    return k == backend_kind::uring ? "uring" : "epoll";
}

bool uring_available() noexcept {
    static const bool ok = detail::probe_uring();
    return ok;
}

// A loop's timers. Most are a fixed timeout armed again and again (write deadlines, idle
// timeouts, keepalive), so a timer usually arrives no earlier than the last one of its kind:
// it is appended to one of a few lists kept in deadline order, where adding and removing it
// touch only its two neighbours. Any other timer goes to a binary min-heap, whose entries keep
// their deadline beside the node pointer so that sifting compares within the heap array; but
// each level a removal sifts writes the index of a moved node, a cold waiting object (10,000
// pending writes with a deadline each made that the loop's largest user-space cost).
struct loop::timer_queue {
    using node = detail::timer_node;
    struct entry {
        clock::time_point when;
        node* node_ptr;
    };
    static constexpr std::size_t list_count = 4;

    timer_queue() {
        for (auto& end : ends)
            end.prev = end.next = &end;
    }
    timer_queue(const timer_queue&) = delete;
    timer_queue& operator=(const timer_queue&) = delete;
    // Timers still queued when the loop goes are told so: their owners (a sleep in a frame
    // destroyed after the loop) then leave them alone instead of unlinking from freed memory.
    ~timer_queue() {
        for (auto& end : ends) {
            for (node* t = end.next; t != &end;) {
                node* next = t->next;
                t->next = nullptr;
                t->index = node::not_queued;
                t = next;
            }
        }
        for (const entry& e : heap)
            e.node_ptr->index = node::not_queued;
    }

    // Each list is circular around its end node: end.next is its earliest timer, end.prev its
    // latest; an empty list's end points to itself.
    std::array<node, list_count> ends;
    std::vector<entry> heap;

    bool empty() const noexcept {
        if (!heap.empty())
            return false;
        for (const auto& end : ends)
            if (end.next != &end)
                return false;
        return true;
    }

    // The timer due first, or null.
    node* earliest() noexcept {
        node* first = heap.empty() ? nullptr : heap.front().node_ptr;
        clock::time_point when = heap.empty() ? clock::time_point::max() : heap.front().when;
        for (auto& end : ends) {
            if (end.next != &end && (first == nullptr || end.next->when < when)) {
                first = end.next;
                when = first->when;
            }
        }
        return first;
    }

    void push(node* t) {
        // The list whose latest timer is the latest one not after t (the closest fit keeps each
        // kind of timeout to a list of its own), else an empty list, else the heap.
        node* to = nullptr;
        node* empty_list = nullptr;
        for (auto& end : ends) {
            if (end.prev == &end) {
                if (empty_list == nullptr)
                    empty_list = &end;
            } else if (end.prev->when <= t->when &&
                       (to == nullptr || to->prev->when < end.prev->when)) {
                to = &end;
            }
        }
        if (to == nullptr)
            to = empty_list;
        if (to != nullptr) {
            t->prev = to->prev;
            t->next = to;
            to->prev->next = t;
            to->prev = t;
            return;
        }
        heap.push_back({t->when, t});
        sift_up(heap.size() - 1);
    }

    void erase(node* t) noexcept {
        if (t->listed()) {
            t->prev->next = t->next;
            t->next->prev = t->prev;
            t->next = nullptr;
            t->index = node::not_queued;
            return;
        }
        std::size_t i = t->index;
        t->index = node::not_queued;
        entry last = heap.back();
        heap.pop_back();
        if (last.node_ptr == t)
            return;
        place(i, last);
        sift_down(i);
        sift_up(last.node_ptr->index);
    }

private:
    void place(std::size_t i, entry e) noexcept {
        heap[i] = e;
        e.node_ptr->index = i;
    }
    void sift_up(std::size_t i) noexcept {
        entry e = heap[i];
        while (i > 0) {
            std::size_t parent = (i - 1) / 2;
            if (!(e.when < heap[parent].when))
                break;
            place(i, heap[parent]);
            i = parent;
        }
        place(i, e);
    }
    void sift_down(std::size_t i) noexcept {
        entry e = heap[i];
        const std::size_t n = heap.size();
        for (;;) {
            std::size_t c = 2 * i + 1;
            if (c >= n)
                break;
            if (c + 1 < n && heap[c + 1].when < heap[c].when)
                ++c;
            if (!(heap[c].when < e.when))
                break;
            place(i, heap[c]);
            i = c;
        }
        place(i, e);
    }
};

struct loop::posted_queue : detail::post_queue {
    /// The io_uring ring a `IORING_OP_MSG_RING` wakes, or -1 (epoll, or no msg_ring).
    int message_fd = -1;
};

namespace {
// What post(std::function) queues: the node and the function in one allocation.
struct function_node : post_node {
    explicit function_node(std::function<void()> f) : fn(std::move(f)) { run = &invoke; }
    static void invoke(post_node* self) noexcept {
        auto* n = static_cast<function_node*>(self);
        n->fn();
        delete n;
    }
    std::function<void()> fn;
};
} // namespace

loop::loop(loop_options opts)
    : kind_(choose_backend(opts)), timers_(std::make_unique<timer_queue>()),
      posted_(std::make_unique<posted_queue>()), heap_trim_threshold_(opts.heap_trim_threshold),
      heap_trim_interval_(opts.heap_trim_interval) {
    if (kind_ == backend_kind::uring)
        backend_ = detail::make_uring_backend(*this, opts);
    else
        backend_ = detail::make_epoll_backend(*this, opts);
    posted_->message_fd = backend_->message_fd();

    int efd = ::eventfd(0, EFD_CLOEXEC | (kind_ == backend_kind::epoll ? EFD_NONBLOCK : 0));
    if (efd < 0)
        throw std::system_error(errno, std::system_category(), "eventfd");
    wake_fd_.fd = efd;
    wake_op_.code = detail::op_code::read;
    wake_op_.fds = &wake_fd_;
    wake_op_.buf = &wake_buf_;
    wake_op_.len = sizeof wake_buf_;
    wake_op_.owner = this;
    wake_op_.on_complete = &loop::on_wake;
    while (start(wake_op_)) {
        // An eventfd read that succeeds at once just drains a stale count.
    }
    previous_current_ = current_loop;
    current_loop = this;
}

loop::~loop() {
    // Loops may die in any order (a vector destroys front to back): unlink this one from the
    // thread's chain wherever it is, or a later loop would restore a dangling pointer.
    if (current_loop == this) {
        current_loop = previous_current_;
    } else {
        for (loop* l = current_loop; l != nullptr; l = l->previous_current_) {
            if (l->previous_current_ == this) {
                l->previous_current_ = previous_current_;
                break;
            }
        }
    }
    // A poster that found the loop asleep reads its wake-up descriptor after publishing its node:
    // wait until every such poster is done (a few instructions and one syscall).
    while (posted_->wakes_outstanding())
        std::this_thread::yield();
    // Nodes never run: free the ones post(std::function) allocated; callers own the others.
    for (post_node* n = posted_->take_all(); n != nullptr;) {
        post_node* next = n->next;
        if (n->run == &function_node::invoke)
            delete static_cast<function_node*>(n);
        n = next;
    }
    // Cancel our own wake-up read and let the backend deliver it, so nothing refers to us.
    if (wake_op_.in_flight) {
        wake_op_.on_complete = [](detail::io_op*) noexcept {};
        cancel(wake_op_);
        for (int i = 0; i < 100 && wake_op_.in_flight; ++i)
            backend_->wait(clock::duration::zero());
        run_ready();
    }
    backend_->remove_fd(wake_fd_);
    backend_.reset();
    ::close(wake_fd_.fd);
}

loop* loop::current() noexcept {
    return current_loop;
}

bool loop::start(detail::io_op& op) {
    op.owner = this;
    return backend_->start(op);
}

void loop::cancel(detail::io_op& op) noexcept {
    backend_->cancel(op);
}

void loop::remove_fd(detail::fd_state& fds) noexcept {
    backend_->remove_fd(fds);
}

void loop::complete_later(detail::io_op& op) noexcept {
    op.next = nullptr;
    if (ready_tail_ != nullptr)
        ready_tail_->next = &op;
    else
        ready_head_ = &op;
    ready_tail_ = &op;
}

void loop::add_timer(detail::timer_node& t) {
    assert(!t.queued()); // queued twice would corrupt a list or the heap
    timers_->push(&t);
}

void loop::remove_timer(detail::timer_node& t) noexcept {
    if (t.queued())
        timers_->erase(&t);
}

bool loop::has_provided_buffers() const noexcept {
    return backend_->has_provided_buffers();
}

std::size_t loop::provided_buffer_count() const noexcept {
    return backend_->provided_buffer_count();
}

std::span<std::byte> loop::provided_buffer(std::uint32_t cqe_flags, unsigned& id) const noexcept {
    return backend_->provided_buffer(cqe_flags, id);
}

void loop::recycle_provided_buffer(unsigned id) noexcept {
    backend_->recycle_provided_buffer(id);
}

void loop::stop() noexcept {
    // Called from another thread, the flag alone would not wake a loop blocked in the kernel.
    if (current_loop == this && running_) {
        stop_ = true;
        return;
    }
    post([this] { stop_ = true; });
}

void loop::post(std::function<void()> fn) {
    post(*new function_node(std::move(fn)));
}

void loop::post(post_node& n) noexcept {
    if (!posted_->push(n))
        return; // the loop is awake: it drains its inbox every iteration
    // This loop was blocked in the kernel and this caller cleared its "asleep" flag: wake it.
    loop* from = current_loop;
    if (from == this) {
        // Posted by a completion that runs inside this loop's own wait: nothing to wake.
    } else if (from == nullptr || !from->running_ || posted_->message_fd < 0 ||
               !from->backend_->send_message(posted_->message_fd)) {
        std::uint64_t one = 1;
        [[maybe_unused]] auto r = ::write(wake_fd_.fd, &one, sizeof one);
    }
    posted_->wake_sent();
}

void loop::on_wake(detail::io_op* op) noexcept {
    loop* self = op->owner;
    // The wake-up only ends the wait; run() drains the inbox every iteration. A read that
    // succeeds at once (epoll) consumed a stale count: read again until it parks.
    while (self->start(self->wake_op_)) {
    }
}

void loop::drain_posted() {
    for (post_node* n = posted_->take_all(); n != nullptr;) {
        post_node* next = n->next; // `run` may reuse or free the node
        n->run(n);
        n = next;
    }
}

void loop::run_ready() noexcept {
    // Only what is queued now: completions queued by these run in the next round.
    detail::io_op* list = ready_head_;
    ready_head_ = ready_tail_ = nullptr;
    while (list != nullptr) {
        detail::io_op* op = list;
        list = op->next;
        op->next = nullptr;
        op->complete();
    }
}

std::optional<clock::duration> loop::next_timeout() const {
    if (ready_head_ != nullptr)
        return clock::duration::zero();
    const detail::timer_node* first = timers_->earliest();
    if (first == nullptr)
        return std::nullopt;
    auto d = first->when - clock::now();
    return d < clock::duration::zero() ? clock::duration::zero() : d;
}

void loop::fire_timers() {
    if (timers_->empty())
        return;
    const auto now = clock::now();
    for (;;) {
        detail::timer_node* t = timers_->earliest();
        if (t == nullptr || now < t->when)
            break;
        timers_->erase(t);
        t->fire(t);
    }
}

// A burst of connections leaves the heap full of free chunks that glibc keeps (only the top of
// the main heap is returned by free()); malloc_trim also releases free pages in the middle of
// every arena. It is done only when nothing is ready, so a busy loop never pays for it, and at
// most once per interval, so a steady load that keeps some free heap pays almost nothing.
// A check skipped for the interval is owed: the wait is cut short at the next check's time, so
// a loop that goes quiet right after a burst still trims once instead of sleeping on the free
// heap. The burst's pooled coroutine frames are freed first, or they would pin pages.
std::optional<clock::duration> loop::trim_heap_if_idle() {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    if (heap_trim_threshold_ == 0 || ready_head_ != nullptr)
        return std::nullopt;
    const auto now = clock::now();
    if (now < next_heap_check_)
        return next_heap_check_ - now;
    next_heap_check_ = now + heap_trim_interval_;
    // Pooled frames are free memory too, though malloc counts them as in use.
    if (::mallinfo2().fordblks + detail::free_frame_bytes() >= heap_trim_threshold_) {
        detail::release_free_frames(idle_frames_per_class);
        ::malloc_trim(0);
    }
#endif
    return std::nullopt;
}

std::optional<clock::duration> loop::next_wait() {
    auto wait = next_timeout();
    const auto check = trim_heap_if_idle();
    if (check && (!wait || *check < *wait))
        wait = check;
    return wait;
}

void loop::run() {
    loop* prev = current_loop;
    current_loop = this;
    running_ = true;
    while (!stop_) {
        run_ready();
        drain_posted();
        if (stop_)
            break;
        auto wait = next_wait();
        // Blocking in the kernel: say so first (posters then wake us), unless work was posted.
        const bool may_block = !wait || *wait > clock::duration::zero();
        const bool asleep = may_block && posted_->try_sleep();
        if (may_block && !asleep)
            wait = clock::duration::zero();
        backend_->wait(wait);
        if (asleep)
            posted_->end_sleep();
        fire_timers();
    }
    // A wake-up for another loop may wait in this loop's submission queue.
    backend_->flush();
    stop_ = false;
    running_ = false;
    current_loop = prev;
}

} // namespace coronet::core
