import Foundation
import RedirectorCompiler
import RedirectorCore
import Testing

/// Every compile error names the file and the place in it (key path or line).
@Suite struct CompilerErrorTests {
    static let csv = ["ok.csv": "192.0.2.0/24,alpha\n"]

    /// Compiles `config` in a fresh fixture; returns the message with the fixture path replaced by `<dir>`.
    static func error(_ config: String, files: [String: String] = csv) throws -> String {
        let fixture = try Fixture(files)
        return fixture.compileError(config).replacingOccurrences(of: fixture.directory.url.path, with: "<dir>")
    }

    @Test func missingConfigFile() throws {
        let fixture = try Fixture()
        let path = fixture.path("nope.yaml")
        #expect(throws: ConfigError.self) { _ = try SnapshotCompiler(configPath: path) }
        do {
            _ = try SnapshotCompiler(configPath: path)
        } catch {
            #expect("\(error)" == "\(path): cannot read the file")
        }
    }

    @Test(arguments: [
        ("routes: [", "<dir>/redirector.yaml: not valid YAML"),
        ("providers:\n  - name: a\n   bad-indent: 1\n", "<dir>/redirector.yaml: not valid YAML"),
        ("\t- tab", "<dir>/redirector.yaml: not valid YAML"),
    ])
    func malformedYAML(config: String, start: String) throws {
        let message = try CompilerErrorTests.error(config)
        #expect(message.hasPrefix(start), "\(message)")
    }

    @Test(arguments: [
        ("routes: 5", "<dir>/redirector.yaml: routes: "),
        ("routes: [{ path: /x, pass: true }]", "<dir>/redirector.yaml: routes[0]: missing key 'name'"),
        ("routes: [{ name: r, pass: true }]", "<dir>/redirector.yaml: routes[0]: missing key 'path'"),
        ("routes: [{ name: r, path: { a: 1 }, pass: true }]", "<dir>/redirector.yaml: routes[0].path: "),
        ("providers: [{ name: a, priority: high }]", "<dir>/redirector.yaml: providers[0].priority: "),
        ("providers: [{ name: a, sources: [{ path: x.csv }] }]", "<dir>/redirector.yaml: providers[0].sources[0]: missing key 'format'"),
        ("routes: [{ name: r, path: /x, respond: { status: many } }]", "<dir>/redirector.yaml: routes[0].respond.status: "),
        ("version: 2", "<dir>/redirector.yaml: version: unsupported config version 2"),
        ("providers: [{ name: a }, { name: a }]", "<dir>/redirector.yaml: providers[1].name: empty or duplicate provider name 'a'"),
        ("providers: [{ name: '' }]", "<dir>/redirector.yaml: providers[0].name: empty or duplicate provider name ''"),
        ("trustedProxies: [10.0.0.0/8, 10.0.0.0/33]", "<dir>/redirector.yaml: trustedProxies[1]: invalid prefix '10.0.0.0/33'"),
        ("trustedProxies: ['127.1/32']", "<dir>/redirector.yaml: trustedProxies[0]: invalid prefix '127.1/32'"),
        ("defaults: { unmatched: maybe }", "<dir>/redirector.yaml: defaults.unmatched: must be 'pass' or 'redirect', not 'maybe'"),
        ("defaults: { status: 200 }", "<dir>/redirector.yaml: defaults.status: redirect status must be 301, 302, 303, 307 or 308, not 200"),
        // Misspelt keys are errors with their line, not silently ignored.
        ("version: 1\nroutes:\n  - { name: r, path: /x, pass: true, redirct: { to: registry } }",
         "<dir>/redirector.yaml:3: routes[0].redirct: unknown key 'redirct' (known: "),
        ("providers:\n  - name: a\n    regionTabel: { path: x.csv, class: artifacts }",
         "<dir>/redirector.yaml:3: providers[0].regionTabel: unknown key 'regionTabel'"),
        ("defaults: { unmatchd: pass }", "<dir>/redirector.yaml:1: defaults.unmatchd: unknown key 'unmatchd'"),
    ])
    func configStructure(config: String, start: String) throws {
        let message = try CompilerErrorTests.error(config)
        #expect(message.hasPrefix(start), "\(message)")
    }

    @Test(arguments: [
        ("sources: [{ format: nope, path: ok.csv }]",
         "<dir>/redirector.yaml: sources[0].format: unknown format 'nope' (known: k8s-asns, pyasn, aws-ip-ranges, gcp-cloud, azure-service-tags, csv, location-db)"),
        ("providers: [{ name: a, sources: [{ format: csv, path: missing.csv }] }]",
         "<dir>/redirector.yaml: providers[0].sources[0]: <dir>/missing.csv: no such file"),
        ("sources: [{ format: csv, path: . }]", "<dir>/redirector.yaml: sources[0]: <dir>: is a directory"),
        ("sources: [{ format: k8s-asns, path: empty }]", "<dir>/redirector.yaml: sources[0].path: directory <dir>/empty has no *.yaml files"),
        ("sources: [{ format: csv, path: bad.csv }]", "<dir>/redirector.yaml: sources[0]: <dir>/bad.csv:3: invalid prefix '10.0.0.0/33'"),
        ("sources: [{ format: csv, path: fields.csv }]", "<dir>/redirector.yaml: sources[0]: <dir>/fields.csv:2: expected 'prefix[,provider[,region]]', got 4 fields"),
        ("sources: [{ format: csv, path: orphan.csv }]", "<dir>/redirector.yaml: sources[0]: <dir>/orphan.csv:1: prefix 192.0.2.0/24 names no provider"),
        ("asnTable: [{ format: pyasn, path: bad.dat }]", "<dir>/redirector.yaml: asnTable[0]: <dir>/bad.dat:3: expected 'prefix<TAB>asn', got '192.0.2.0/24 64500'"),
        ("asnTable: [{ format: pyasn, path: badprefix.dat }]", "<dir>/redirector.yaml: asnTable[0]: <dir>/badprefix.dat:2: invalid prefix '192.0.2.0/+24'"),
        ("sources: [{ format: k8s-asns, path: vendor.yaml }]", "<dir>/redirector.yaml: sources[0]: <dir>/vendor.yaml:4: ASN 'AS15169' is not a positive 32-bit number"),
        ("sources: [{ format: k8s-asns, path: noname.yaml }]", "<dir>/redirector.yaml: sources[0]: <dir>/noname.yaml: missing 'name'"),
        ("providers: [{ name: a, sources: [{ format: aws-ip-ranges, path: aws.json }] }]",
         "<dir>/redirector.yaml: providers[0].sources[0]: <dir>/aws.json: prefixes[1]: invalid prefix '3.5.140.0/022'"),
        ("providers: [{ name: a, sources: [{ format: aws-ip-ranges, path: broken.json }] }]",
         "<dir>/redirector.yaml: providers[0].sources[0]: <dir>/broken.json: not valid JSON"),
        ("providers: [{ name: a, sources: [{ format: gcp-cloud, path: gcp.json }] }]",
         "<dir>/redirector.yaml: providers[0].sources[0]: <dir>/gcp.json: prefixes[0]: entry has no ipv4Prefix/ipv6Prefix"),
        ("providers: [{ name: a, sources: [{ format: azure-service-tags, path: azure.json }] }]",
         "<dir>/redirector.yaml: providers[0].sources[0]: <dir>/azure.json: values[0].properties.addressPrefixes[1]: invalid prefix 'fe80::/10%eth0'"),
    ])
    func sourceErrors(config: String, expected: String) throws {
        let files = [
            "ok.csv": "192.0.2.0/24,alpha\n",
            "bad.csv": "# comment\n192.0.2.0/24,alpha\n10.0.0.0/33,alpha\n",
            "fields.csv": "192.0.2.0/24,alpha\n198.51.100.0/24,alpha,r,extra\n",
            "orphan.csv": "192.0.2.0/24\n",
            "bad.dat": "; comment\n192.0.2.0/24\t64500\n192.0.2.0/24 64500\n",
            "badprefix.dat": "192.0.2.0/24\t64500\n192.0.2.0/+24\t64500\n",
            "vendor.yaml": "name: v\nasns:\n  - 15169\n  - AS15169\n",
            "noname.yaml": "asns: [1]\n",
            "empty/readme.txt": "no yaml here",
            "aws.json": #"{"prefixes": [{"ip_prefix": "3.5.140.0/22", "region": "r", "service": "S"}, {"ip_prefix": "3.5.140.0/022", "region": "r", "service": "S"}], "ipv6_prefixes": []}"#,
            "broken.json": #"{"prefixes": [}"#,
            "gcp.json": #"{"prefixes": [{"scope": "x"}]}"#,
            "azure.json": #"{"values": [{"name": "AzureCloud", "properties": {"region": "", "addressPrefixes": ["13.64.0.0/11", "fe80::/10%eth0"]}}]}"#,
        ]
        let message = try CompilerErrorTests.error(config, files: files)
        #expect(message.hasPrefix(expected), "\(message)")
    }

    static let routeCases: [(String, String)] = [
        ("{ name: r, path: /x, redirect: { to: registry, status: 200 } }", "routes[0].redirect.status: redirect status must be 301, 302, 303, 307 or 308, not 200"),
        ("{ name: r, path: /x, redirect: { to: registry, status: 304 } }", "routes[0].redirect.status: redirect status must be"),
        ("{ name: r, path: /x, respond: { status: 302 } }", "routes[0].respond.status: must be 100–599 and not a redirect (use 'redirect'), not 302"),
        ("{ name: r, path: /x, respond: { status: 600 } }", "routes[0].respond.status: must be 100–599"),
        ("{ name: r, path: /x, respond: { status: 99 } }", "routes[0].respond.status: must be 100–599"),
        ("{ name: r, path: /x, providers: [nope], pass: true }", "routes[0].providers: unknown provider 'nope'"),
        ("{ name: r, path: /x, exceptProviders: [alpha, nope], pass: true }", "routes[0].exceptProviders: unknown provider 'nope'"),
        ("{ name: r, path: /x, redirect: { to: artifacts, provider: nope } }", "routes[0].redirect.provider: unknown provider 'nope'"),
        ("{ name: r, path: /x, redirect: { to: 'https://h', provider: alpha } }", "routes[0].redirect.provider: only applies with 'to: registry' or 'to: artifacts'"),
        ("{ name: r, path: /x, clients: some, pass: true }", "routes[0].clients: must be 'any', 'matched' or 'unmatched', not 'some'"),
        ("{ name: r, path: /x, clients: matched, providers: [alpha], pass: true }", "routes[0]: set only one of 'clients', 'providers', 'exceptProviders'"),
        ("{ name: r, path: /x, methods: [GET], exceptMethods: [POST], pass: true }", "routes[0]: set either 'methods' or 'exceptMethods', not both"),
        ("{ name: r, path: /x, methods: [get], pass: true }", "routes[0].methods: 'get' is not an upper-case method name"),
        ("{ name: r, path: /x, methods: ['GET '], pass: true }", "routes[0].methods: 'GET ' is not an upper-case method name"),
        ("{ name: r, path: /x, exceptMethods: [''], pass: true }", "routes[0].methods: '' is not an upper-case method name"),
        ("{ name: r, path: /x }", "routes[0]: set exactly one of 'redirect', 'respond', 'pass: true'"),
        ("{ name: r, path: /x, pass: true, respond: { status: 404 } }", "routes[0]: set exactly one of"),
        ("{ name: r, path: /x, pass: false }", "routes[0]: set exactly one of"),
        ("{ name: r, path: v2/x, pass: true }", "routes[0].path: path pattern 'v2/x' must start with '/'"),
        ("{ name: r, path: [], pass: true }", "routes[0].path: names no path pattern"),
        ("{ name: r, path: [/ok, '/{a}/{a}'], pass: true }", "routes[0].path: path pattern '/{a}/{a}' captures 'a' twice"),
        ("{ name: r, path: '/{x', pass: true }", "routes[0].path: path pattern '/{x' has an unclosed '{'"),
        ("{ name: r, path: '/{x}', redirect: { to: registry, rewrite: '/y/{z}' } }", "routes[0].redirect.rewrite: '/y/{z}' uses '{z}', which the path pattern does not capture"),
        ("{ name: r, path: '/{x}', redirect: { to: registry, rewrite: 'y/{x}' } }", "routes[0].redirect.rewrite: 'y/{x}' must start with '/' or a capture"),
        ("{ name: r, path: '/{x}', redirect: { to: registry, rewrite: '/{x' } }", "routes[0].redirect.rewrite: '/{x' has an unclosed '{'"),
        // A leading capture could continue the target's host name (`https://h` + `@evil.example`).
        ("{ name: r, path: '/{x}', redirect: { to: registry, rewrite: '{x}/y' } }", "routes[0].redirect.rewrite: '{x}/y' starts with the capture '{x}'"),
        ("{ name: r, path: '/a/{x...}', redirect: { to: registry, rewrite: '{x}' } }", "routes[0].redirect.rewrite: '{x}' starts with the capture '{x}'"),
        ("{ name: r, path: '/{x}', redirect: { to: registry, rewrite: '/a b' } }", "routes[0].redirect.rewrite: '/a b' contains spaces or control characters"),
        ("{ name: r, path: '/{x}', redirect: { to: registry, rewrite: \"/a\\r\\nb\" } }", "routes[0].redirect.rewrite: "),
        ("{ name: r, path: /x, respond: { status: 404, headers: { 'Bad Header': v } } }", "routes[0].respond.headers: invalid header 'Bad Header: v'"),
        ("{ name: r, path: /x, respond: { status: 404, headers: { 'X-A': \"v\\r\\nSet-Cookie: a\" } } }", "routes[0].respond.headers: invalid header"),
        ("{ name: r, path: /x, respond: { status: 404, headers: { 'X-A': \"\\u00e9\" } } }", "routes[0].respond.headers: invalid header"),
        ("{ name: r, path: /x, respond: { status: 404, headers: { 'X:A': v } } }", "routes[0].respond.headers: invalid header"),
        ("{ name: r, path: /x, respond: { status: 404, headers: { '': v } } }", "routes[0].respond.headers: invalid header"),
    ]

    @Test(arguments: routeCases)
    func routeErrors(route: String, expected: String) throws {
        let config = "providers: [{ name: alpha }]\nroutes:\n  - { name: ok, path: /ok, pass: true }\n  - \(route)\n"
        // The bad route is the second: its index must be 1.
        let message = try CompilerErrorTests.error(config)
        let place = "<dir>/redirector.yaml: " + expected.replacingOccurrences(of: "routes[0]", with: "routes[1]")
        #expect(message.hasPrefix(place), "\(message)")
    }

    static let badTargets = [
        "javascript:alert(1)", "https://a b", "https://h/?q", "https://h/x?", "https://h/#f", "https://h#f", "ftp://h",
        "https://user@h", "https://user:pass@h", "https://h:0", "https://h:65536", "https://h:99999", "https://h:", "https://h:http",
        "https://h:+80", "https://h:-1", "//h", "https://", "https:///x", "https://.h", "https://-h", "https://h\\x", "https://h/a\\b",
        "https://h/a b", "https://[::1]", "data:text/html,x", "https://h\r\nX: y", "https://h/\u{7f}", "https://hé",
    ]

    @Test(arguments: badTargets)
    func badTargetURLs(target: String) throws {
        let quoted = "'" + target.replacingOccurrences(of: "'", with: "''") + "'"
        let escaped = "\"" + target.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\r", with: "\\r")
            .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\u{7f}", with: "\\x7f") + "\""
        let value = target.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\u{7f}" }) ? escaped : quoted
        for (config, place) in [
            ("routes: [{ name: r, path: /x, redirect: { to: \(value) } }]", "routes[0].redirect.to"),
            ("providers: [{ name: alpha, registry: \(value) }]", "providers[alpha].registry"),
            ("providers: [{ name: alpha, artifacts: \(value) }]", "providers[alpha].artifacts"),
            ("providers: [{ name: alpha, regions: { eu: { artifacts: \(value) } } }]", "providers[alpha].regions.eu.artifacts"),
            ("defaults: { unmatched: redirect, registry: \(value) }", "defaults.registry"),
        ] {
            let message = try CompilerErrorTests.error(config)
            #expect(message.hasPrefix("<dir>/redirector.yaml: \(place): '"), "\(target) in \(place): \(message)")
            #expect(message.hasSuffix("is not a host name or an http(s) URL without query, fragment or credentials"), "\(message)")
        }
    }

    /// A configured target is used byte for byte (a bare host gains `https://`, and the scheme,
    /// which is case-insensitive, is written in lower case): host case, base path and trailing
    /// slashes stay. A base ending in `/` followed by a path starting with `/` writes that slash once.
    @Test(arguments: [
        ("registry.example", "https://registry.example", "https://registry.example/p?q"),
        ("HTTPS://Registry.Example", "https://Registry.Example", "https://Registry.Example/p?q"),
        ("http://h.example:8080", "http://h.example:8080", "http://h.example:8080/p?q"),
        ("https://h.example/base/", "https://h.example/base/", "https://h.example/base/p?q"),
        ("https://h.example/Base/Path", "https://h.example/Base/Path", "https://h.example/Base/Path/p?q"),
        ("h.example:443", "https://h.example:443", "https://h.example:443/p?q"),
        ("https://h-1.example//", "https://h-1.example//", "https://h-1.example//p?q"),
        ("https://example.org/privacy-policy/", "https://example.org/privacy-policy/", "https://example.org/privacy-policy/p?q"),
    ])
    func targetsAreUsedAsWritten(target: String, asWritten: String, withPath: String) throws {
        // Appended path: the request's own path and query.
        let appended = try Fixture().compile("routes: [{ name: r, path: '/{x...}', redirect: { to: '\(target)' } }]\n")
        #expect(appended.ask("10.0.0.1", "/p?q").location == withPath)
        // No path appended (an empty rewrite, no query): the Location is the target itself.
        let exact = try Fixture().compile("routes: [{ name: r, path: '/{x...}', redirect: { to: '\(target)', rewrite: '', keepQuery: false } }]\n")
        #expect(exact.ask("10.0.0.1", "/p?q").location == asWritten)
        // The same target as a provider's, a region's and the unmatched default's.
        let provider = try Fixture(["ranges.csv": "10.0.0.0/8,alpha\n192.0.2.0/24,alpha,eu\n"]).compile("""
            providers: [{ name: alpha, artifacts: '\(target)', regions: { eu: { artifacts: '\(target)' } },
                          sources: [{ format: csv, path: ranges.csv }] }]
            routes: [{ name: a, path: '/{x...}', redirect: { to: artifacts } }]
            defaults: { unmatched: redirect, artifacts: '\(target)' }
            """)
        #expect(provider.ask("10.0.0.1", "/p?q").location == withPath)  // the provider's target
        #expect(provider.ask("192.0.2.1", "/p?q").location == withPath)  // its region's
        #expect(provider.ask("198.51.100.1", "/p?q").location == withPath)  // the unmatched default
    }

    @Test func regionTableErrorsNameTheLine() throws {
        let files = [
            "ok.csv": "192.0.2.0/24,alpha\n",
            "regions.csv": "region,url\nus-east-1,https://us.example\n# comment\n<default>,anything at all\neu-1,javascript:alert(1)\n",
        ]
        let message = try CompilerErrorTests.error(
            "providers: [{ name: alpha, regionTable: { path: regions.csv, class: artifacts } }]", files: files)
        #expect(message == "<dir>/regions.csv:5: expected 'region,url', got 'eu-1,javascript:alert(1)'")
        let badClass = try CompilerErrorTests.error(
            "providers: [{ name: alpha, regionTable: { path: regions.csv, class: blobs } }]", files: files)
        #expect(badClass == "<dir>/redirector.yaml: providers[alpha].regionTable.class: must be 'registry' or 'artifacts', not 'blobs'")
        let missing = try CompilerErrorTests.error(
            "providers: [{ name: alpha, regionTable: { path: none.csv, class: artifacts } }]", files: files)
        #expect(missing == "<dir>/redirector.yaml: providers[alpha].regionTable: <dir>/none.csv: no such file")
    }
}
