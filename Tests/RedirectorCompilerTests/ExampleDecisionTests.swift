import RedirectorCore
import Testing

/// Decisions of the two shipped example policies on the real data in `examples/data`.
@Suite struct SimpleExampleTests {
    let snapshot: Snapshot

    init() throws { snapshot = try Examples.simple.get() }

    @Test func registryRequestOfAnAWSClient() {
        let answer = snapshot.ask("3.5.140.1", "/v2/pause/manifests/3.9?x=1")
        #expect(answer.action == "redirect")
        #expect(answer.status == 302)
        #expect(answer.location == "https://kubernetes.ecr.io/v2/pause/manifests/3.9?x=1")
        #expect(answer.provider == "amazon")
        #expect(answer.region == "ap-northeast-2")
        #expect(answer.prefix == prefix("3.5.140.0/22"))
        #expect(answer.route == "registry")
        #expect(answer.target == "https://kubernetes.ecr.io")
        #expect(snapshot.ask("3.5.140.1", "/v2/pause/manifests/3.9", method: "HEAD").location
                == "https://kubernetes.ecr.io/v2/pause/manifests/3.9")
    }

    @Test func artifactRequestsOfAGoogleCloudClient() {
        let answer = snapshot.ask("34.35.0.1", "/releases/v1.30.0/bin/linux/amd64/kubectl")
        #expect(answer.action == "redirect")
        #expect(answer.location == "https://kubernetes-release.storage.googleapis.com/releases/v1.30.0/bin/linux/amd64/kubectl")
        #expect(answer.provider == "google" && answer.region == "africa-south1" && answer.route == "artifacts")
        #expect(snapshot.ask("34.35.0.1", "/binaries/kube-apiserver").location
                == "https://kubernetes-release.storage.googleapis.com/binaries/kube-apiserver")
        let v6 = snapshot.ask("2600:1900:8000::1", "/v2/")
        #expect(v6.location == "https://k8s.gcr.io/v2/")
        #expect(v6.region == "africa-south1" && v6.asn == 15169)  // ASN filled in from the ASN table
    }

    @Test func asnOnlyProviders() {
        // Microsoft has no cloud ranges here: its prefixes come from its ASNs via the pyasn table.
        let microsoft = snapshot.ask("13.64.0.1", "/v2/x")
        #expect(microsoft.provider == "microsoft" && microsoft.asn == 8075 && microsoft.prefix == prefix("13.64.0.0/11"))
        #expect(microsoft.location == "https://kubernetes.acr.io/v2/x")
        // Google's own AS prefixes carry no region: the provider-wide target applies.
        let google = snapshot.ask("8.8.8.8", "/v2/x")
        #expect(google.provider == "google" && google.region == "" && google.location == "https://k8s.gcr.io/v2/x")
        // DigitalOcean's vendor file names no hosts: matched, but the fallback (pass) applies.
        let digitalOcean = snapshot.ask("45.55.0.1", "/v2/x")
        #expect(digitalOcean.provider == "digitalocean" && digitalOcean.asn == 14061)
        #expect(digitalOcean.action == "pass" && digitalOcean.location == nil && digitalOcean.route == "registry")
    }

    @Test func passes() {
        #expect(snapshot.ask("192.0.2.1", "/v2/x").action == "pass")  // no provider
        #expect(snapshot.ask("192.0.2.1", "/v2/x").provider == "")
        #expect(snapshot.ask("3.5.140.1", "/index.html").action == "pass")  // path of no route
        #expect(snapshot.ask("3.5.140.1", "/v2/x", method: "POST").action == "pass")  // only GET and HEAD
        #expect(snapshot.ask("3.5.140.1", "/v2/x", method: "get").action == "pass")  // methods are exact bytes
        #expect(snapshot.ask("not an address", "/v2/x").action == "pass")
        #expect(snapshot.ask("3.5.140.1", "/v2").action == "pass")  // /v2/{rest...} needs the slash
    }

    @Test func mappedIPv6ClientIsTheIPv4Client() {
        let mapped = snapshot.ask("::ffff:3.5.140.1", "/v2/x")
        #expect(mapped == snapshot.ask("3.5.140.1", "/v2/x"))
        #expect(mapped.prefix == prefix("3.5.140.0/22"))
        // A translated address is IPv6 and matches nothing here.
        #expect(snapshot.ask("::ffff:0:3.5.140.1", "/v2/x").provider == "")
    }

    @Test func as16550IsGooglesByDeclarationOrder() {
        // AS16550 is listed by google.yaml and microsoft.yaml; the report names the conflict and the winner.
        #expect(snapshot.report.contains("conflict: AS16550 is claimed by google and microsoft"))
        #expect(snapshot.report.contains("google wins by the ownership rule"))
    }
}

@Suite struct RegistryK8sIOExampleTests {
    let snapshot: Snapshot

    init() throws { snapshot = try Examples.registry.get() }

    static let digest = "sha256:da86e6ba6ca197bf6bc5e9d900febd906b133eaa4750e6bed647b0fbe50ed43e"

    @Test func onlyGetAndHeadElse405() {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get"] {
            for target in ["/", "/v2/", "/v2/pause/blobs/\(RegistryK8sIOExampleTests.digest)", "/nothing"] {
                let answer = snapshot.ask("34.35.0.1", target, method: method)
                #expect(answer.action == "respond" && answer.status == 405 && answer.route == "method-not-allowed", "\(method) \(target)")
            }
        }
        #expect(snapshot.ask("192.0.2.1", "/", method: "HEAD").status == 307)
    }

    @Test func homeAndPrivacy() {
        let home = snapshot.ask("192.0.2.1", "/?utm=1")
        #expect(home.action == "redirect" && home.status == 307)
        #expect(home.location == "https://github.com/kubernetes/registry.k8s.io")  // keepQuery: false
        #expect(snapshot.ask("192.0.2.1", "/privacy").location == "https://www.linuxfoundation.org/legal/privacy-policy")
        #expect(snapshot.ask("3.5.140.1", "/privacy-notice?x").location == "https://www.linuxfoundation.org/legal/privacy-policy")
        #expect(snapshot.ask("192.0.2.1", "/privacy/x").route == "privacy")
    }

    @Test func v2RootAndCatalog() {
        for target in ["/v2", "/v2/"] {
            let answer = snapshot.ask("3.5.140.1", target)
            #expect(answer.action == "respond" && answer.status == 200 && answer.route == "v2-root")
            #expect(answer.headers.map { "\($0.name): \($0.value)" } == ["Docker-Distribution-Api-Version: registry/2.0"])
            #expect(answer.location == nil)
        }
        let catalog = snapshot.ask("34.35.0.1", "/v2/_catalog")
        #expect(catalog.action == "respond" && catalog.status == 404 && catalog.headers.isEmpty)
    }

    @Test func blobsOfGoogleCloudClientsGoUpstream() {
        let digest = RegistryK8sIOExampleTests.digest
        let answer = snapshot.ask("34.35.0.1", "/v2/pause/blobs/\(digest)")
        #expect(answer.route == "blob-gcp" && answer.status == 307)
        #expect(answer.location == "https://us-central1-docker.pkg.dev/v2/k8s-artifacts-prod/images/pause/blobs/\(digest)")
        let nested = snapshot.ask("2600:1900:8000::1", "/v2/sig-storage/csi-provisioner/blobs/\(digest)?ns=registry.k8s.io")
        #expect(nested.location == "https://us-central1-docker.pkg.dev/v2/k8s-artifacts-prod/images/sig-storage/csi-provisioner/blobs/\(digest)?ns=registry.k8s.io")
    }

    @Test func blobsOfAWSClientsGoToTheirRegionsBucket() {
        let digest = RegistryK8sIOExampleTests.digest
        let seoul = snapshot.ask("3.5.140.1", "/v2/pause/blobs/\(digest)")
        #expect(seoul.route == "blob-bucket" && seoul.provider == "aws" && seoul.region == "ap-northeast-2")
        #expect(seoul.location == "https://prod-registry-k8s-io-ap-northeast-2.s3.dualstack.ap-northeast-2.amazonaws.com/containers/images/\(digest)")
        // Longest-prefix match: 15.193.0.5 is ap-south-1 (archeio's shortest match would say GLOBAL).
        let mumbai = snapshot.ask("15.193.0.5", "/v2/pause/blobs/\(digest)")
        #expect(mumbai.region == "ap-south-1" && mumbai.prefix == prefix("15.193.0.0/24"))
        #expect(mumbai.location == "https://prod-registry-k8s-io-ap-south-1.s3.dualstack.ap-south-1.amazonaws.com/containers/images/\(digest)")
        let virginia6 = snapshot.ask("2600:1f18::1", "/v2/pause/blobs/\(digest)")
        #expect(virginia6.location == "https://prod-registry-k8s-io-us-east-1.s3.dualstack.us-east-1.amazonaws.com/containers/images/\(digest)")
    }

    @Test func blobsOfOtherClientsGoToTheDefaultMirror() {
        let digest = RegistryK8sIOExampleTests.digest
        let expected = "https://d1be1w964nk82h.cloudfront.net/containers/images/\(digest)"
        // An AWS region without a bucket, AWS GLOBAL, and clients of no provider.
        for client in ["51.168.0.1", "15.193.20.5", "192.0.2.1", "2001:db8::1", "not-an-ip"] {
            let answer = snapshot.ask(client, "/v2/pause/blobs/\(digest)")
            #expect(answer.route == "blob-bucket" && answer.location == expected, "\(client)")
        }
        #expect(snapshot.ask("51.168.0.1", "/v2/x/blobs/\(digest)").region == "me-west-1")
    }

    @Test func otherV2PathsGoUpstream() {
        let answer = snapshot.ask("3.5.140.1", "/v2/pause/manifests/3.9?a=b")
        #expect(answer.route == "upstream-registry" && answer.status == 307)
        #expect(answer.location == "https://us-central1-docker.pkg.dev/v2/k8s-artifacts-prod/images/pause/manifests/3.9?a=b")
        // A digest-looking path that is not a valid digest is not a blob.
        let notDigest = snapshot.ask("3.5.140.1", "/v2/pause/blobs/sha256:not.valid")
        #expect(notDigest.route == "upstream-registry")
        #expect(snapshot.ask("3.5.140.1", "/v2/pause/blobs/uploads/").route == "upstream-registry")
        #expect(snapshot.ask("3.5.140.1", "/v2/pause/manifests/3.9", method: "HEAD").status == 307)
    }

    @Test func everythingElseIs404() {
        for target in ["/foo", "/v1/x", "/v3/", "/favicon.ico", "/V2/", "//v2/x"] {
            let answer = snapshot.ask("3.5.140.1", target)
            #expect(answer.action == "respond" && answer.status == 404 && answer.route == "not-found", "\(target)")
        }
        // Targets that are not paths match no pattern at all (every pattern starts with '/').
        for target in ["*", "v2/x", "http://evil.example/v2/x", ""] {
            #expect(snapshot.ask("3.5.140.1", target).action == "pass", "\(target)")
        }
    }
}
