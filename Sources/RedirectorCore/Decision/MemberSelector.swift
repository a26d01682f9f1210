/// The object a redirect is for, as rendezvous hashing sees it: its key's hash is computed on
/// first use, so pools of one member never hash.
struct ObjectKey {
    /// The key bytes (the path, or a capture of it).
    let bytes: UnsafeRawBufferPointer
    private var cached: UInt64?

    /// A key over `bytes`.
    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// The key's hash.
    @inline(__always)
    mutating func hash() -> UInt64 {
        if let cached { return cached }
        let value = ObjectKey.fingerprint(bytes)
        cached = value
        return value
    }

    /// A 64-bit fingerprint of `bytes`: multiply-xorshift steps over its 8-byte words (the last
    /// one read overlapping the one before when the length is not a multiple of 8). Each step is
    /// a bijection of the word, so keys of one length that differ in their last word never
    /// collide; the member cost's splitmix64 finalizer supplies the avalanche. XXH64 cost a
    /// quarter of a pool decision on a short path; this costs a few instructions per word.
    @inline(__always)
    static func fingerprint(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        @inline(__always) func step(_ hash: UInt64, _ word: UInt64) -> UInt64 {
            let mixed = (hash ^ word) &* 0x9e37_79b9_7f4a_7c15
            return mixed ^ (mixed &>> 29)
        }
        let count = bytes.count
        var hash = step(0x243f_6a88_85a3_08d3, UInt64(truncatingIfNeeded: count))
        guard let base = bytes.baseAddress, count > 0 else { return hash }
        guard count >= 8 else {
            var word: UInt64 = 0
            for index in 0..<count { word |= UInt64(bytes[index]) &<< UInt64(truncatingIfNeeded: index &* 8) }
            return step(hash, word)
        }
        var offset = 0
        while offset &+ 8 < count {
            hash = step(hash, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
            offset &+= 8
        }
        return step(hash, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)))
    }
}

/// Where a redirect goes: a member of a pool, with the fallback step it came from.
struct MemberChoice {
    /// The pool of the member (none when nothing was chosen).
    var pool: PoolRef
    /// The chosen member's base URL and slot, nil when the request passes.
    var member: (url: StringRef, slot: UInt32)?
    /// The step that gave the member, or ``FallbackStep/pass`` / ``FallbackStep/none``.
    var step: FallbackStep
}

/// Walks a target's fallback chain and chooses the first healthy member:
/// the client's region's pool → the nearest regions' pools (when the provider has region
/// locations) → the provider's pool → the policy's default pool → pass. A pool with no member up
/// goes to its own fallback pool first, or stops the chain when it says `pass` — except a
/// nearest region's pool, whose own fallback is ignored (the next nearest region comes next).
struct MemberSelector {
    /// What a pool of the chain gave.
    private enum Outcome {
        /// A member was chosen.
        case chosen(MemberChoice)
        /// Nothing up here: go on down the chain.
        case next
        /// Nothing up and the pool says `pass`: stop.
        case stop
    }

    /// The snapshot's tables (which outlive the selector: it lives inside one decision).
    let tables: UnsafePointer<DecisionTables>
    let health: HealthView
    var key: ObjectKey
    /// Whether some pool of the chain had no member up (later steps are failovers).
    private var failedOver = false

    init(tables: UnsafePointer<DecisionTables>, health: HealthView, key: ObjectKey) {
        self.tables = tables
        self.health = health
        self.key = key
    }

    /// The member a redirect to `target` goes to for a client with `client`'s attributes.
    mutating func resolve<Trace: DecisionTrace>(_ target: RedirectTarget, client: MatchAttributes, trace: inout Trace) -> MemberChoice {
        switch target {
        case .pool(let reference):
            if case .chosen(let choice) = walk(reference, .primary, &trace) { return choice }
        case .provider(let targetClass, let fixed):
            switch walkProvider(fixed ?? client.provider, targetClass, client: client, &trace) {
            case .chosen(let choice): return choice
            case .stop: return exhausted
            case .next: break
            }
            if case .chosen(let choice) = walk(tables.pointee.fallback[targetClass], .globalDefault, &trace) { return choice }
        }
        return exhausted
    }

    /// The provider's part of the chain: for its own clients, their region's pool and then the
    /// nearest regions' pools; then the provider's pool for all regions.
    private mutating func walkProvider<Trace: DecisionTrace>(_ index: Int32, _ targetClass: TargetClass, client: MatchAttributes,
                                                             _ trace: inout Trace) -> Outcome {
        guard index >= 0, Int(index) < tables.pointee.providers.count else { return .next }
        let provider = tables.pointee.providers[Int(index)]
        guard provider.isActive else { return .next }
        if index == client.provider && !client.region.isEmpty {
            let regions = tables.pointee.regionTargets[provider.regions]
            var regionalPool = PoolRef.none
            for entry in regions where entry.region == client.region {
                regionalPool = entry.targets[targetClass]
                break
            }
            let regional = walk(regionalPool, .primary, &trace)
            guard case .next = regional else { return regional }
            if !(provider.nearestRegionOnlyOnFailure && regionalPool.isEmpty) {
                for order in tables.pointee.regionOrders[provider.orders] where order.region == client.region {
                    for region in tables.pointee.nearestRegions[order.nearest] where Int(region) < regions.count {
                        let nearest = walk(regions[Int(region)].targets[targetClass], .nearestRegion, &trace)
                        guard case .next = nearest else { return nearest }
                    }
                    break
                }
            }
        }
        return walk(provider.targets[targetClass], .provider, &trace)
    }

    /// The end of the chain: pass (``FallbackStep/pass`` if some pool was down, else there was no target).
    private var exhausted: MemberChoice {
        MemberChoice(pool: .none, member: nil, step: failedOver ? .pass : .none)
    }

    /// Tries `reference` and the pools it names as fallbacks (at most one visit per pool: the
    /// compiler rejects cycles, and a hostile snapshot cannot loop).
    private mutating func walk<Trace: DecisionTrace>(_ reference: PoolRef, _ step: FallbackStep, _ trace: inout Trace) -> Outcome {
        var current = reference
        var step = step
        var hops = 0
        while let index = current.index, index < tables.pointee.pools.count, hops <= tables.pointee.pools.count {
            trace.considered(pool: current, step: step)
            let members = tables.pointee.members[tables.pointee.pools[index].members]
            if let member = choose(members, &trace) {
                let labelled = failedOver || step == .nearestRegion ? step : .primary
                let chosen = (url: members[member].url, slot: members[member].slot)
                return .chosen(MemberChoice(pool: current, member: chosen, step: labelled))
            }
            failedOver = true
            // Another region's pool stands in for the client's own: its fallback is that
            // region's business, so the chain goes on to the next nearest region.
            guard step != .nearestRegion else { return .next }
            switch tables.pointee.pools[index].fallback {
            case .chain: return .next
            case .pass: return .stop
            case .pool(let next):
                current = next
                step = .poolFallback
                hops &+= 1
            }
        }
        return .next
    }

    /// The member of a pool for this object: among the members up, those of the lowest priority
    /// number, the lowest rendezvous cost; its index. nil when every member is down.
    private mutating func choose<Trace: DecisionTrace>(_ members: UnsafeBufferPointer<MemberEntry>, _ trace: inout Trace) -> Int? {
        if members.count == 1 {
            guard health.isDown(members[0].slot) else { return 0 }
            trace.skipped(url: members[0].url, reason: health.downReason(members[0].slot))
            return nil
        }
        // One pass: the best priority among the members up; among its members, the lowest
        // cost. Costs (and the key's hash) are computed only once a second member shares the
        // best priority seen so far, so a lone candidate needs no hashing.
        var best = -1
        var bestPriority = Int32.max
        var bestCost = Double.nan  // NaN: not computed yet
        for index in members.indices where !health.isDown(members[index].slot) {
            let member = members[index]
            if member.priority < bestPriority {
                (best, bestPriority, bestCost) = (index, member.priority, .nan)
            } else if member.priority == bestPriority {
                let hash = key.hash()
                if bestCost.isNaN {
                    bestCost = PoolMember.rendezvousCost(key: hash, seed: members[best].seed, inverseWeight: members[best].inverseWeight)
                }
                let cost = PoolMember.rendezvousCost(key: hash, seed: member.seed, inverseWeight: member.inverseWeight)
                if cost < bestCost { (best, bestCost) = (index, cost) }
            }
        }
        if !(trace is NoDecisionTrace) {
            for index in members.indices where index != best {
                let member = members[index]
                let reason: SkipReason = health.isDown(member.slot) ? health.downReason(member.slot)
                    : member.priority != bestPriority ? .priority : .weight
                trace.skipped(url: member.url, reason: reason)
            }
        }
        return best >= 0 ? best : nil
    }
}
