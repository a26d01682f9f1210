/// A bounded map from object URL to the last presence answer, least recently used entries
/// evicted first, each entry valid until its own expiry. Not thread-safe: ``PresenceChecker``
/// holds it under its lock. Memory is flat: at most ``capacity`` entries, in arrays allocated once.
struct PresenceCache {
    /// A remembered answer.
    struct Entry {
        var url: String
        var present: Bool
        var expires: UInt64
        var older: Int32
        var newer: Int32
    }

    /// Most entries held.
    let capacity: Int
    private var entries: [Entry] = []
    private var index: [String: Int32] = [:]
    /// Most recently used entry, -1 when empty.
    private var newest: Int32 = -1
    /// Least recently used entry, -1 when empty.
    private var oldest: Int32 = -1
    /// Slots of `entries` freed by expired entries, reused first.
    private var free: [Int32] = []

    /// Entries evicted to make room, since creation.
    private(set) var evictions = 0

    /// An empty cache of `capacity` entries (at least 1).
    init(capacity: Int) {
        self.capacity = max(1, capacity)
        entries.reserveCapacity(min(self.capacity, 1 << 16))
        index.reserveCapacity(min(self.capacity, 1 << 16))
    }

    /// Number of entries held (expired ones included until they are looked up or evicted).
    var count: Int { index.count }

    /// The answer remembered for `url` if it has not expired at `now` (nanoseconds, monotonic);
    /// a hit becomes the most recently used entry, an expired entry is dropped.
    mutating func lookup(_ url: String, now: UInt64) -> Bool? {
        guard let position = index[url] else { return nil }
        guard entries[Int(position)].expires > now else {
            remove(position)
            return nil
        }
        touch(position)
        return entries[Int(position)].present
    }

    /// Remembers `present` for `url` until `expires`, evicting the least recently used entry when full.
    mutating func store(_ url: String, present: Bool, expires: UInt64) {
        if let position = index[url] {
            entries[Int(position)].present = present
            entries[Int(position)].expires = expires
            touch(position)
            return
        }
        let entry = Entry(url: url, present: present, expires: expires, older: -1, newer: -1)
        let position: Int32
        if let slot = free.popLast() {
            position = slot
            entries[Int(position)] = entry
        } else if entries.count < capacity {
            position = Int32(entries.count)
            entries.append(entry)
        } else {
            position = oldest
            unlink(position)
            index[entries[Int(position)].url] = nil
            evictions &+= 1
            entries[Int(position)] = entry
        }
        index[url] = position
        linkNewest(position)
    }


    private mutating func remove(_ position: Int32) {
        unlink(position)
        index[entries[Int(position)].url] = nil
        entries[Int(position)].url = ""
        free.append(position)
    }

    private mutating func touch(_ position: Int32) {
        guard position != newest else { return }
        unlink(position)
        linkNewest(position)
    }

    private mutating func unlink(_ position: Int32) {
        let entry = entries[Int(position)]
        if entry.older >= 0 { entries[Int(entry.older)].newer = entry.newer } else { oldest = entry.newer }
        if entry.newer >= 0 { entries[Int(entry.newer)].older = entry.older } else { newest = entry.older }
        entries[Int(position)].older = -1
        entries[Int(position)].newer = -1
    }

    private mutating func linkNewest(_ position: Int32) {
        entries[Int(position)].older = newest
        entries[Int(position)].newer = -1
        if newest >= 0 { entries[Int(newest)].newer = position }
        newest = position
        if oldest < 0 { oldest = position }
    }
}
