import Foundation
import Synchronization

/// A spinner on stderr while a request is slow (an RSA-4096 key takes seconds to generate), so a
/// person at a terminal sees that hsmctl is waiting, not stuck. Scripts and pipes never see it:
/// it only appears when stderr is a terminal, and only after a pause fast requests never reach.
final class ProgressLine: Sendable {
    private static let delay = 0.4
    private static let frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

    private struct State {
        var finished = false
        var shown = false
    }

    private let activity: String
    private let started = Date()
    // The line is written and erased under this lock, so nothing is drawn after the erase.
    private let state = Mutex(State())

    private init(_ activity: String) {
        self.activity = activity
    }

    static func around<Result>(_ activity: String, _ work: () throws -> Result) rethrows -> Result {
        guard isatty(STDERR_FILENO) == 1 else { return try work() }
        let line = ProgressLine(activity)
        Thread.detachNewThread { line.animate() }
        defer { line.finish() }
        return try work()
    }

    private func animate() {
        Thread.sleep(forTimeInterval: Self.delay)
        var frame = 0
        while draw(frame) {
            frame = (frame + 1) % Self.frames.count
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// Draws one frame; false once the request has finished.
    private func draw(_ frame: Int) -> Bool {
        state.withLock { state in
            guard !state.finished else { return false }
            Self.write("\r\(Self.frames[frame]) \(activity)… \(Int(Date().timeIntervalSince(started)))s")
            state.shown = true
            return true
        }
    }

    private func finish() {
        state.withLock { state in
            state.finished = true
            if state.shown { Self.write("\r\u{1B}[K") }
        }
    }

    private static func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
