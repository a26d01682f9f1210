import RedirectorCore
import Testing

/// Client address resolution (DESIGN.md §3.6): nginx realip with `real_ip_recursive on`.
@Suite struct ClientAddressResolverTests {
    let resolver = ClientAddressResolver(trustedProxies: [prefix("10.0.0.0/8"), prefix("127.0.0.1/32"), prefix("2001:db8:ffff::/48")])

    @Test func trust() {
        #expect(resolver.isTrusted(address("10.1.2.3")))
        #expect(resolver.isTrusted(address("127.0.0.1")))
        #expect(!resolver.isTrusted(address("127.0.0.2")))
        #expect(resolver.isTrusted(address("2001:db8:ffff::1")))
        #expect(!resolver.isTrusted(address("2001:db8:fffe::1")))
        #expect(resolver.isTrusted(address("::ffff:10.9.9.9")))  // mapped peer = IPv4 peer
        #expect(!resolver.isTrusted(address("::10.9.9.9")))
        #expect(!ClientAddressResolver(trustedProxies: []).isTrusted(address("10.0.0.1")))
        let everyone = ClientAddressResolver(trustedProxies: [prefix("0.0.0.0/0"), prefix("::/0")])
        #expect(everyone.isTrusted(address("203.0.113.9")) && everyone.isTrusted(address("2a00::1")))
    }

    @Test func untrustedPeerIgnoresHeaders() {
        let peer = address("203.0.113.5")
        #expect(resolver.resolve(peer: peer, forwardedFor: ["198.51.100.1"]) == peer)
        #expect(resolver.resolve(peer: peer, forwardedFor: ["198.51.100.1, 10.0.0.2"], realIP: "198.51.100.9") == peer)
        #expect(resolver.resolve(peer: peer, forwardedFor: [], realIP: "198.51.100.9") == peer)
        let peer6 = address("2a00::5")
        #expect(resolver.resolve(peer: peer6, forwardedFor: ["198.51.100.1"], realIP: "198.51.100.9") == peer6)
    }

    @Test func trustedPeerTakesRightmostUntrusted() {
        let peer = address("10.0.0.1")
        #expect(resolver.resolve(peer: peer, forwardedFor: ["198.51.100.1"]) == address("198.51.100.1"))
        #expect(resolver.resolve(peer: peer, forwardedFor: ["198.51.100.1, 10.0.0.2"]) == address("198.51.100.1"))
        // A client-supplied (spoofed) entry left of the real client is ignored.
        #expect(resolver.resolve(peer: peer, forwardedFor: ["1.1.1.1, 198.51.100.1, 10.0.0.2, 10.0.0.3"]) == address("198.51.100.1"))
        #expect(resolver.resolve(peer: peer, forwardedFor: ["2a00::1, 10.0.0.2"]) == address("2a00::1"))
        #expect(resolver.resolve(peer: peer, forwardedFor: ["::ffff:198.51.100.1"]) == address("198.51.100.1"))
        #expect(resolver.resolve(peer: address("2001:db8:ffff::9"), forwardedFor: ["198.51.100.4"]) == address("198.51.100.4"))
        // Spaces, tabs and empty entries are tolerated.
        #expect(resolver.resolve(peer: peer, forwardedFor: ["  198.51.100.1 ,\t10.0.0.2\t, ,"]) == address("198.51.100.1"))
    }

    @Test func everyEntryTrustedGivesTheLeftmost() {
        #expect(resolver.resolve(peer: address("10.0.0.1"), forwardedFor: ["10.0.0.7, 10.0.0.2"]) == address("10.0.0.7"))
        #expect(resolver.resolve(peer: address("10.0.0.1"), forwardedFor: [""]) == address("10.0.0.1"))
        #expect(resolver.resolve(peer: address("10.0.0.1"), forwardedFor: []) == address("10.0.0.1"))
    }

    @Test func multipleHeadersAreOneList() {
        let peer = address("10.0.0.1")
        #expect(resolver.resolve(peer: peer, forwardedFor: ["198.51.100.1", "10.0.0.3"]) == address("198.51.100.1"))
        #expect(resolver.resolve(peer: peer, forwardedFor: ["198.51.100.1", "198.51.100.2, 10.0.0.3"]) == address("198.51.100.2"))
        #expect(resolver.resolve(peer: peer, forwardedFor: ["198.51.100.1, 10.0.0.9", "10.0.0.3"]) == address("198.51.100.1"))
    }

    @Test(arguments: ["garbage", "198.51.100.1:8080", "[2a00::1]", "[2a00::1]:443", "010.0.0.1", "127.1", "unknown",
                      "fe80::1%eth0", "198.51.100.1 198.51.100.2", "for=198.51.100.1"])
    func malformedEntryStopsTheWalk(entry: String) {
        // The walk stops at the malformed entry: the last trusted hop is the answer, never the
        // address left of the garbage and never the garbage.
        let peer = address("10.0.0.1")
        #expect(resolver.resolve(peer: peer, forwardedFor: ["198.51.100.1, \(entry), 10.0.0.2"]) == address("10.0.0.2"))
        #expect(resolver.resolve(peer: peer, forwardedFor: ["198.51.100.1, \(entry)"]) == peer)
        #expect(resolver.resolve(peer: peer, forwardedFor: ["198.51.100.1", entry]) == peer)
    }

    @Test func thousandsOfEntriesAreBounded() {
        let peer = address("10.0.0.1")
        // 5,000 trusted hops after the client: the walk gives up after maximumHops entries, at a trusted hop.
        let hops = (0..<5000).map { "10.0.\($0 / 256).\($0 % 256)" }
        let header = (["198.51.100.1"] + hops).joined(separator: ", ")
        let answer = resolver.resolve(peer: peer, forwardedFor: [header])
        #expect(answer == address(hops[hops.count - ClientAddressResolver.maximumHops]))
        #expect(resolver.isTrusted(answer))
        // Split over thousands of headers: the same bound.
        let split = resolver.resolve(peer: peer, forwardedFor: ["198.51.100.1"] + hops)
        #expect(split == answer)
        // Within the bound the client is found.
        let near = (["198.51.100.1"] + hops.suffix(ClientAddressResolver.maximumHops - 1)).joined(separator: ",")
        #expect(resolver.resolve(peer: peer, forwardedFor: [near]) == address("198.51.100.1"))
        // Thousands of untrusted entries: the rightmost wins immediately.
        let many = (0..<10_000).map { "198.51.\($0 / 256 % 256).\($0 % 256)" }.joined(separator: ",")
        #expect(resolver.resolve(peer: peer, forwardedFor: [many]) == address("198.51.39.15"))
    }

    @Test func realIPOnlyFromTrustedPeers() {
        #expect(resolver.resolve(peer: address("10.0.0.1"), forwardedFor: [], realIP: "198.51.100.9") == address("198.51.100.9"))
        #expect(resolver.resolve(peer: address("10.0.0.1"), forwardedFor: [], realIP: " 2a00::9 ") == address("2a00::9"))
        #expect(resolver.resolve(peer: address("203.0.113.1"), forwardedFor: [], realIP: "198.51.100.9") == address("203.0.113.1"))
        // Malformed X-Real-IP is ignored.
        #expect(resolver.resolve(peer: address("10.0.0.1"), forwardedFor: [], realIP: "198.51.100.9:80") == address("10.0.0.1"))
        #expect(resolver.resolve(peer: address("10.0.0.1"), forwardedFor: [], realIP: "") == address("10.0.0.1"))
        // X-Forwarded-For takes precedence when present.
        #expect(resolver.resolve(peer: address("10.0.0.1"), forwardedFor: ["198.51.100.1"], realIP: "198.51.100.9") == address("198.51.100.1"))
    }
}
