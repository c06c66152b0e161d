#pragma once

#include <cstddef>
#include <iterator>
#include <utility>

namespace coronet::core {

template <class T, class Tag>
class intrusive_list;

/// The links an object needs to be an element of an `intrusive_list<T, Tag>`: derive `T` from
/// `intrusive_list_hook<Tag>` (once per list kind the object may be in at the same time; `Tag`
/// tells the hooks apart). The list never allocates and never owns its elements. An element
/// destroyed while linked unlinks itself, so a list never points at a dead element. Not
/// copyable or movable (the neighbours point at it). Not thread-safe.
template <class Tag = void>
class intrusive_list_hook {
public:
    intrusive_list_hook() noexcept = default;
    intrusive_list_hook(const intrusive_list_hook&) = delete;
    intrusive_list_hook& operator=(const intrusive_list_hook&) = delete;
    ~intrusive_list_hook() { unlink(); }

    /// True while the object is an element of a list.
    bool is_linked() const noexcept { return next_ != nullptr; }

private:
    template <class, class>
    friend class intrusive_list;

    void unlink() noexcept {
        if (next_ == nullptr)
            return;
        prev_->next_ = next_;
        next_->prev_ = prev_;
        prev_ = next_ = nullptr;
    }
    void link_before(intrusive_list_hook* pos) noexcept {
        prev_ = pos->prev_;
        next_ = pos;
        pos->prev_->next_ = this;
        pos->prev_ = this;
    }

    intrusive_list_hook* prev_ = nullptr;
    intrusive_list_hook* next_ = nullptr;
};

/// A doubly linked list of objects that carry their own links (`T` derives from
/// `intrusive_list_hook<Tag>`, publicly, or privately with this list a friend of `T`). Insertion
/// and removal are O(1) and allocate nothing, so waiters, stop callbacks and connections can be
/// listed by embedding the node in the object (cppcoro's and Boost.Intrusive's pattern).
///
/// The list does not own its elements: destroying or clearing it only unlinks them. An element
/// is in at most one list per `Tag`; `erase` takes any element of this list. Iterators stay
/// valid while their element stays linked; erasing the element an iterator points at
/// invalidates only that iterator. Movable (the elements move over to the new list), not
/// copyable. Not thread-safe: a list and its elements belong to one thread (one loop).
template <class T, class Tag = void>
class intrusive_list {
    using hook = intrusive_list_hook<Tag>;

public:
    intrusive_list() noexcept { root_.prev_ = root_.next_ = &root_; }
    intrusive_list(const intrusive_list&) = delete;
    intrusive_list& operator=(const intrusive_list&) = delete;
    /// Takes every element of `o`, in order; `o` is left empty.
    intrusive_list(intrusive_list&& o) noexcept : intrusive_list() { take(o); }
    /// Unlinks this list's elements, then takes every element of `o`.
    intrusive_list& operator=(intrusive_list&& o) noexcept {
        if (this != &o) {
            clear();
            take(o);
        }
        return *this;
    }
    ~intrusive_list() { clear(); }

    /// True when the list has no element. O(1).
    bool empty() const noexcept { return root_.next_ == &root_; }
    /// The number of elements. O(n): keep a count beside the list where it is needed often.
    std::size_t size() const noexcept {
        std::size_t n = 0;
        for (const hook* h = root_.next_; h != &root_; h = h->next_)
            ++n;
        return n;
    }

    /// The first element. Precondition: not empty.
    T& front() noexcept { return as_element(root_.next_); }
    /// The last element. Precondition: not empty.
    T& back() noexcept { return as_element(root_.prev_); }

    /// Appends `x`. Precondition: `x` is not linked into a list of this `Tag`.
    void push_back(T& x) noexcept { as_hook(x).link_before(&root_); }
    /// Prepends `x`. Precondition: `x` is not linked into a list of this `Tag`.
    void push_front(T& x) noexcept { as_hook(x).link_before(root_.next_); }
    /// Unlinks and returns the first element, or null when the list is empty.
    T* pop_front() noexcept {
        if (empty())
            return nullptr;
        T& x = front();
        as_hook(x).unlink();
        return &x;
    }
    /// Unlinks `x`. Precondition: `x` is an element of this list (an unlinked `x` is ignored).
    void erase(T& x) noexcept { as_hook(x).unlink(); }
    /// Unlinks every element (O(n)); the elements are not touched otherwise.
    void clear() noexcept {
        while (!empty())
            root_.next_->unlink();
    }

    /// A forward iterator over the elements, front to back.
    template <class V>
    class basic_iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = T;
        using difference_type = std::ptrdiff_t;
        using pointer = V*;
        using reference = V&;

        basic_iterator() noexcept = default;
        reference operator*() const noexcept { return as_element(h_); }
        pointer operator->() const noexcept { return &as_element(h_); }
        basic_iterator& operator++() noexcept {
            h_ = h_->next_;
            return *this;
        }
        basic_iterator operator++(int) noexcept {
            basic_iterator old = *this;
            h_ = h_->next_;
            return old;
        }
        friend bool operator==(basic_iterator a, basic_iterator b) noexcept { return a.h_ == b.h_; }

    private:
        friend class intrusive_list;
        explicit basic_iterator(const hook* h) noexcept : h_(const_cast<hook*>(h)) {}
        hook* h_ = nullptr;
    };
    using iterator = basic_iterator<T>;
    using const_iterator = basic_iterator<const T>;

    iterator begin() noexcept { return iterator(root_.next_); }
    iterator end() noexcept { return iterator(&root_); }
    const_iterator begin() const noexcept { return const_iterator(root_.next_); }
    const_iterator end() const noexcept { return const_iterator(&root_); }

private:
    static hook& as_hook(T& x) noexcept { return static_cast<hook&>(x); }
    static T& as_element(hook* h) noexcept { return static_cast<T&>(*h); }

    void take(intrusive_list& o) noexcept {
        if (o.empty())
            return;
        root_.next_ = o.root_.next_;
        root_.prev_ = o.root_.prev_;
        root_.next_->prev_ = &root_;
        root_.prev_->next_ = &root_;
        o.root_.prev_ = o.root_.next_ = &o.root_;
    }

    // The sentinel: the list is a ring through it, so linking and unlinking never branch on
    // the ends and an element can unlink itself without knowing its list.
    hook root_;
};

} // namespace coronet::core
