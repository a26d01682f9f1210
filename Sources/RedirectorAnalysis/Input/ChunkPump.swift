import CZlib
import Glibc

/// Reads (and inflates) a zlib file on a background thread into a small ring of chunks, so that
/// decompression and parsing overlap on two cores. Memory is bounded by the ring.
///
/// The producer thread owns the `gzFile` until it finishes; ``stop()`` asks it to end after its
/// current read. All shared state is guarded by one mutex.
final class ChunkPump: @unchecked Sendable {
    private let file: gzFile
    private let chunks: [UnsafeMutableRawBufferPointer]
    private var counts: [Int]
    private var ready: [Int] = []
    private var free: [Int]
    private var finished = false
    private var stopping = false
    private var failure: String?
    private var truncation: String?
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private let name: String

    /// A pump over `file` with `chunkCount` chunks of `chunkSize` bytes.
    init(file: gzFile, name: String, chunkSize: Int = 1 << 20, chunkCount: Int = 4) {
        self.file = file
        self.name = name
        chunks = (0..<chunkCount).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 64) }
        counts = Array(repeating: 0, count: chunkCount)
        free = Array(0..<chunkCount)
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        pthread_cond_init(condition, nil)
    }

    deinit {
        for chunk in chunks { chunk.deallocate() }
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(condition)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Starts the producer thread; false when no thread could be created (the caller reads directly).
    func start(_ thread: inout pthread_t) -> Bool {
        let context = Unmanaged.passRetained(self).toOpaque()
        let result = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<ChunkPump>.fromOpaque(raw).takeRetainedValue().produce()
            return nil
        }, context)
        if result != 0 {
            Unmanaged<ChunkPump>.fromOpaque(context).release()
            return false
        }
        return true
    }

    /// The producer: fill free chunks until the end of the input, an error, or ``stop()``.
    private func produce() {
        while true {
            pthread_mutex_lock(mutex)
            while free.isEmpty && !stopping { pthread_cond_wait(condition, mutex) }
            if stopping {
                finished = true
                pthread_cond_broadcast(condition)
                pthread_mutex_unlock(mutex)
                return
            }
            let index = free.removeFirst()
            pthread_mutex_unlock(mutex)

            let chunk = chunks[index]
            let count = gzread(file, chunk.baseAddress, UInt32(truncatingIfNeeded: chunk.count))
            var message: String?
            var code: Int32 = 0
            if count <= 0 {
                let text = gzerror(file, &code).map { String(cString: $0) } ?? ""
                if count < 0 {
                    message = "\(name): \(text.isEmpty ? "read error" : text)"
                } else if code != Z_OK && code != Z_STREAM_END {
                    message = "\(name): \(text.isEmpty ? "read error" : text) (truncated gzip?); analyzed what could be read"
                }
            }

            pthread_mutex_lock(mutex)
            if count > 0 {
                counts[index] = Int(count)
                ready.append(index)
            } else {
                if count < 0 { failure = message } else { truncation = message }
                finished = true
                free.append(index)
            }
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
            if count <= 0 { return }
        }
    }

    /// The next filled chunk (its index and bytes), or nil at the end. Give it back with ``recycle(_:)``.
    func take() -> (index: Int, bytes: UnsafeRawBufferPointer)? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while ready.isEmpty && !finished { pthread_cond_wait(condition, mutex) }
        guard !ready.isEmpty else { return nil }
        let index = ready.removeFirst()
        return (index, UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(chunks[index])[..<counts[index]]))
    }

    /// Returns a chunk to the producer.
    func recycle(_ index: Int) {
        pthread_mutex_lock(mutex)
        free.append(index)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Asks the producer to end after its current read.
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// After the end: a read error (thrown by the reader) and a truncation warning.
    var outcome: (failure: String?, truncation: String?) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return (failure, truncation)
    }
}
