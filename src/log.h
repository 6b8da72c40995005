#pragma once
// Process-wide logging to stderr, one line per event, thread-safe.
// Never log tokens or patient names: callers redact first.
#include <string_view>

namespace si::log {
enum class Level { kDebug, kInfo, kWarn, kError };
void SetLevel(Level level);
void Write(Level level, std::string_view component, std::string_view message);
inline void Info(std::string_view c, std::string_view m) { Write(Level::kInfo, c, m); }
inline void Warn(std::string_view c, std::string_view m) { Write(Level::kWarn, c, m); }
inline void Error(std::string_view c, std::string_view m) { Write(Level::kError, c, m); }
inline void Debug(std::string_view c, std::string_view m) { Write(Level::kDebug, c, m); }
}  // namespace si::log
