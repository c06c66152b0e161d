#pragma once

#include <coronet/core/error.hpp>

#include <cassert>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace coronet::core {

/// Thrown by `result<T>::value()` when the result holds an error. Only for callers that chose
/// exceptions; the library itself checks results.
class bad_result_access : public std::system_error {
public:
    using std::system_error::system_error;
};

/// A value or a `std::error_code`: how every expected network outcome (EOF, reset, timeout,
/// cancellation, bad input) is reported. A small stand-in for `std::expected`, which libstdc++
/// 12 lacks. Not thread-safe (a plain value type).
template <class T>
class [[nodiscard]] result {
public:
    /// Holds a value.
    template <class U = T>
    requires std::is_constructible_v<T, U&&> &&(!std::is_same_v<std::remove_cvref_t<U>, result>)&&(
        !std::is_convertible_v<U&&, std::error_code>)result(U&& v)
        : data_(std::in_place_index<0>, std::forward<U>(v)) {}

    /// Holds an error; `ec` must not be zero.
    result(std::error_code ec) : data_(std::in_place_index<1>, ec) { assert(ec); }
    /// Holds an error of the core category.
    result(errc e) : result(make_error_code(e)) {}

    /// True when a value is held.
    bool has_value() const noexcept { return data_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    /// The value; throws `bad_result_access` carrying the error when there is none.
    T& value() & {
        check();
        return *std::get_if<0>(&data_);
    }
    const T& value() const& {
        check();
        return *std::get_if<0>(&data_);
    }
    T&& value() && {
        check();
        return std::move(*std::get_if<0>(&data_));
    }

    /// The value without a check (undefined if there is none).
    T& operator*() & noexcept { return *std::get_if<0>(&data_); }
    const T& operator*() const& noexcept { return *std::get_if<0>(&data_); }
    T&& operator*() && noexcept { return std::move(*std::get_if<0>(&data_)); }
    T* operator->() noexcept { return std::get_if<0>(&data_); }
    const T* operator->() const noexcept { return std::get_if<0>(&data_); }

    /// The error, or a default (zero) error_code when a value is held.
    std::error_code error() const noexcept {
        if (auto* e = std::get_if<1>(&data_))
            return *e;
        return {};
    }

private:
    void check() const {
        if (!has_value())
            throw bad_result_access(*std::get_if<1>(&data_));
    }
    std::variant<T, std::error_code> data_;
};

/// `result<void>`: success or an error_code.
template <>
class [[nodiscard]] result<void> {
public:
    /// Success.
    result() noexcept = default;
    /// An error; a zero `ec` means success.
    result(std::error_code ec) noexcept : ec_(ec) {}
    result(errc e) noexcept : ec_(make_error_code(e)) {}

    bool has_value() const noexcept { return !ec_; }
    explicit operator bool() const noexcept { return !ec_; }
    /// Throws `bad_result_access` if an error is held.
    void value() const {
        if (ec_)
            throw bad_result_access(ec_);
    }
    std::error_code error() const noexcept { return ec_; }

private:
    std::error_code ec_;
};

} // namespace coronet::core
