// Redis Cluster's key -> slot function (CRC16/XMODEM of the key's hash tag, mod 16384), so a
// client can send each command to the master that owns its keys without asking.
#pragma once

#include <cstdint>
#include <string_view>

namespace hookq::cluster {

constexpr int kSlots = 16384;

// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as Redis computes it.
uint16_t crc16(std::string_view data) noexcept;

// The slot of a key: of the part between the first '{' and the next '}' when that part is not
// empty (the hash tag), else of the whole key.
int key_slot(std::string_view key) noexcept;

}  // namespace hookq::cluster
