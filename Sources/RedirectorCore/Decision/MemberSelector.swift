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
    /// The chosen member, nil when the request passes.
    var member: PoolMember?
    /// The step that gave the member, or ``FallbackStep/pass`` / ``FallbackStep/none``.
    var step: FallbackStep
}

/// Walks a target's fallback chain and chooses the first healthy member:
/// the client's region's pool → the nearest regions' pools (when the provider has region
/// locations) → the provider's pool → the policy's default pool → pass. A pool with no member up
/// goes to its own fallback pool first, or stops the chain when it says `pass`.
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
            chain: if index >= 0 {
                let provider = policy.providers[Int(index)]
                guard provider.isActive else { break chain }
                if index == client.provider {
                    switch walk(provider.regionTarget(targetClass, region: client.region), .primary, &trace) {
                    case .chosen(let choice): return choice
                    case .stop: return exhausted
                    case .next: break
                    }
                    for region in provider.nearestRegions(to: client.region) {
                        switch walk(provider.regionTargets[Int(region)].targets[targetClass], .nearestRegion, &trace) {
                        case .chosen(let choice): return choice
                        case .stop: return exhausted
                        case .next: continue
                        }
                    }
                }
                switch walk(provider.targets[targetClass], .provider, &trace) {
                case .chosen(let choice): return choice
                case .stop: return exhausted
                case .next: break
                }
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
            let pool = pools[index]
            trace.considered(pool: current, step: step)
            if let member = choose(pool, &trace) {
                let labelled = failedOver || step == .nearestRegion ? step : .primary
                return .chosen(MemberChoice(pool: current, member: member, step: labelled))
            }
            failedOver = true
            switch pool.fallback {
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
    /// number, the highest rendezvous score. nil when every member is down.
    private mutating func choose<Trace: DecisionTrace>(_ pool: Pool, _ trace: inout Trace) -> PoolMember? {
        let members = pool.members
        if members.count == 1 {
            let only = members[0]
            guard health.isDown(only.slot) else { return only }
            trace.skipped(member: only, reason: .down)
            return nil
        }
        var priority = Int32.max
        for member in members where member.priority < priority && !health.isDown(member.slot) { priority = member.priority }
        var best = -1
        if priority != .max {
            let hash = key.hash()
            var bestScore = -1.0
            for (index, member) in members.enumerated() where member.priority == priority && !health.isDown(member.slot) {
                let score = member.score(key: hash)
                if score > bestScore {
                    bestScore = score
                    best = index
                }
            }
        }
        if !(trace is NoDecisionTrace) {
            for (index, member) in members.enumerated() where index != best {
                let reason: SkipReason = health.isDown(member.slot) ? .down : member.priority != priority ? .priority : .weight
                trace.skipped(member: member, reason: reason)
            }
        }
        return best >= 0 ? members[best] : nil
    }
}
