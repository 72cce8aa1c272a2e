//! Tag bytes of the canonical key format (version 1). Never reuse or renumber a tag: add new
//! ones and bump [`super::FORMAT_VERSION`] if the meaning of an existing one changes.

/// `None`.
pub const NONE: u8 = 0x00;
/// `False`.
pub const FALSE: u8 = 0x01;
/// `True`.
pub const TRUE: u8 = 0x02;
/// int fitting in i64: 8 bytes big-endian two's complement.
pub const INT: u8 = 0x03;
/// int outside i64: sign byte, varint length, big-endian magnitude.
pub const BIGINT: u8 = 0x04;
/// float: 8 bytes big-endian IEEE-754 bits, NaN canonicalised.
pub const FLOAT: u8 = 0x05;
/// str: varint byte length, UTF-8.
pub const STR: u8 = 0x06;
/// bytes-like: varint length, raw bytes.
pub const BYTES: u8 = 0x07;
/// tuple: varint count, members in order.
pub const TUPLE: u8 = 0x08;
/// list: varint count, members in order.
pub const LIST: u8 = 0x09;
/// dict: varint count, (key, value) entries sorted by their encoded bytes.
pub const DICT: u8 = 0x0A;
/// set: varint count, members sorted by their encoded bytes.
pub const SET: u8 = 0x0B;
/// frozenset: as set, under its own tag.
pub const FROZENSET: u8 = 0x0C;
/// `...`.
pub const ELLIPSIS: u8 = 0x0D;
/// complex: two floats' bits (16 bytes).
pub const COMPLEX: u8 = 0x0E;
/// str holding lone surrogates: varint length, UTF-8 with surrogatepass.
pub const STR_SURROGATES: u8 = 0x0F;
/// object with `__cache_key__()`: type name, then the encoding of what it returned.
pub const CACHE_KEY: u8 = 0x10;
/// dataclass instance: type name, varint count, (field name, value) in field order.
pub const DATACLASS: u8 = 0x11;
/// enum member: type name, then the encoding of its value.
pub const ENUM: u8 = 0x12;
/// datetime.datetime: components, then tz offset.
pub const DATETIME: u8 = 0x13;
/// datetime.date: year (u16), month, day.
pub const DATE: u8 = 0x14;
/// datetime.time: components, then tz offset.
pub const TIME: u8 = 0x15;
/// datetime.timedelta: days, seconds, microseconds as ints.
pub const TIMEDELTA: u8 = 0x16;
/// decimal.Decimal: its `str()`.
pub const DECIMAL: u8 = 0x17;
/// uuid.UUID: 16 bytes.
pub const UUID: u8 = 0x18;
/// pathlib pure path: flavour byte (0 posix, 1 windows), then its str.
pub const PATH: u8 = 0x19;
/// subclass of a builtin (int, str, tuple, ...): type name, then the base encoding.
pub const SUBCLASS: u8 = 0x1A;
/// an object keyed by identity (a method's `self` with no value key): process nonce (16
/// bytes), token (8 bytes), type name. Never equal across processes by construction.
pub const INSTANCE: u8 = 0x1B;
/// a class object: its qualified name.
pub const TYPE: u8 = 0x1C;
