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
        let value = XXHash64.hash(bytes)
        cached = value
        return value
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

    let pools: [Pool]
    let health: HealthView
    var key: ObjectKey
    /// Whether some pool of the chain had no member up (later steps are failovers).
    private var failedOver = false

    init(pools: [Pool], health: HealthView, key: ObjectKey) {
        self.pools = pools
        self.health = health
        self.key = key
    }

    /// The member a redirect to `target` goes to for a client with `client`'s attributes.
    mutating func resolve<Trace: DecisionTrace>(_ target: RedirectTarget, policy: Policy, client: MatchAttributes,
                                                isActive: Bool, trace: inout Trace) -> MemberChoice {
        switch target {
        case .pool(let reference):
            if case .chosen(let choice) = walk(reference, .primary, &trace) { return choice }
        case .provider(let targetClass, let fixed):
            let index = fixed ?? client.provider
            // Read in place: a copy of the provider would retain and release its arrays.
            let outcome = policy.providers.withUnsafeBufferPointer { providers -> Outcome in
                guard index >= 0, Int(index) < providers.count, providers[Int(index)].isActive else { return .next }
                if index == client.provider {
                    let regionalPool = providers[Int(index)].regionTarget(targetClass, region: client.region)
                    let regional = walk(regionalPool, .primary, &trace)
                    guard case .next = regional else { return regional }
                    let nearest = providers[Int(index)].nearestRegionOnlyOnFailure && regionalPool.isEmpty
                        ? [] : providers[Int(index)].nearestRegions(to: client.region)
                    for region in nearest {
                        let nearest = walk(providers[Int(index)].regionTargets[Int(region)].targets[targetClass], .nearestRegion, &trace)
                        guard case .next = nearest else { return nearest }
                    }
                }
                return walk(providers[Int(index)].targets[targetClass], .provider, &trace)
            }
            switch outcome {
            case .chosen(let choice): return choice
            case .stop: return exhausted
            case .next: break
            }
            if case .redirect(let pools) = policy.fallback,
               case .chosen(let choice) = walk(pools[targetClass], .globalDefault, &trace) {
                return choice
            }
        }
        return exhausted
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
        while let index = current.index, index < pools.count, hops <= pools.count {
            trace.considered(pool: current, step: step)
            if let member = choose(index, &trace) {
                let labelled = failedOver || step == .nearestRegion ? step : .primary
                let chosen = (url: pools[index].members[member].url, slot: pools[index].members[member].slot)
                return .chosen(MemberChoice(pool: current, member: chosen, step: labelled))
            }
            failedOver = true
            // Another region's pool stands in for the client's own: its fallback is that
            // region's business, so the chain goes on to the next nearest region.
            guard step != .nearestRegion else { return .next }
            switch pools[index].fallback {
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

    /// The member of `pool` for this object: among the members up, those of the lowest priority
    /// number, the highest rendezvous score; its index. nil when every member is down. The members
    /// are read through their buffer (no copies on the decision path).
    private mutating func choose<Trace: DecisionTrace>(_ pool: Int, _ trace: inout Trace) -> Int? {
        let health = self.health
        return pools[pool].members.withUnsafeBufferPointer { members -> Int? in
            if members.count == 1 {
                guard health.isDown(members[0].slot) else { return 0 }
                trace.skipped(member: members[0], reason: .down)
                return nil
            }
            // First the best priority among the members up, and how many share it: a lone
            // candidate needs no hashing.
            var best = -1
            var bestPriority = Int32.max
            var candidates = 0
            for index in members.indices where !health.isDown(members[index].slot) {
                let priority = members[index].priority
                if priority < bestPriority {
                    (best, bestPriority, candidates) = (index, priority, 1)
                } else if priority == bestPriority {
                    candidates &+= 1
                }
            }
            if candidates > 1 {
                let hash = key.hash()
                var bestScore = -1.0
                for index in members.indices where members[index].priority == bestPriority && !health.isDown(members[index].slot) {
                    let score = members[index].score(key: hash)
                    if score > bestScore {
                        best = index
                        bestScore = score
                    }
                }
            }
            if !(trace is NoDecisionTrace) {
                for index in members.indices where index != best {
                    let member = members[index]
                    let reason: SkipReason = health.isDown(member.slot) ? .down : member.priority != bestPriority ? .priority : .weight
                    trace.skipped(member: member, reason: reason)
                }
            }
            return best >= 0 ? best : nil
        }
    }
}
