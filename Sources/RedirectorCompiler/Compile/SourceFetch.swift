/// How `redirector update` obtained a source file from its URL: recorded in the snapshot's
/// provenance beside the file's own checksum and the publisher's version.
public struct SourceFetch: Sendable, Equatable {
    /// The URL the file was fetched from.
    public var url: String
    /// The server's `ETag`, if it sent one.
    public var etag: String?
    /// The server's `Last-Modified`, if it sent one.
    public var lastModified: String?
    /// When the file was last fetched or revalidated (a 304 counts), Unix seconds.
    public var fetchedAt: UInt64

    /// Creates a fetch record.
    public init(url: String, etag: String? = nil, lastModified: String? = nil, fetchedAt: UInt64) {
        self.url = url
        self.etag = etag
        self.lastModified = lastModified
        self.fetchedAt = fetchedAt
    }
}
