// The fields of an `rdr_request` as RedirectorCore reads them: byte ranges, and the request
// headers as `RequestHeader`s in stack memory (rdr_decide allocates nothing).

import CRedirector
import RedirectorCore

/// A (pointer, length) field of `rdr_request` as bytes; a NULL pointer or a zero length reads as empty.
@inline(__always)
func bytes(_ start: UnsafePointer<CChar>?, _ count: Int) -> UnsafeRawBufferPointer {
    guard let start, count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: start, count: count)
}

/// Calls `body` with the request's headers (`headers[0..<header_count]`) as ``RequestHeader``s in
/// a stack buffer of `RDR_MAX_HEADERS`: all of them when they fit, else the first that many whose
/// name a route looks at (``Policy/headerNames``). No headers when `reading` is false (no route
/// looks at any) or the request has none.
@inline(__always)
func withRequestHeaders<Result>(_ request: rdr_request, reading: Bool, snapshot: Snapshot,
                                _ body: (UnsafeBufferPointer<RequestHeader>) -> Result) -> Result {
    let count = request.header_count
    guard reading, let headers = request.headers, count > 0 else {
        return body(UnsafeBufferPointer(start: nil, count: 0))
    }
    let limit = Int(RDR_MAX_HEADERS)
    return withUnsafeTemporaryAllocation(of: RequestHeader.self, capacity: limit) { buffer in
        let filter = count > limit
        var used = 0
        var index = 0
        while index < count && used < limit {
            let header = headers[index]
            index &+= 1
            let name = bytes(header.name, header.name_len)
            if filter {
                let strings = snapshot.strings
                guard snapshot.policy.headerNames.contains(where: { RequestHeader.name(name, is: strings.bytes($0)) }) else { continue }
            }
            buffer.initializeElement(at: used, to: RequestHeader(name: name, value: bytes(header.value, header.value_len)))
            used &+= 1
        }
        return body(UnsafeBufferPointer(rebasing: buffer[..<used]))
    }
}
