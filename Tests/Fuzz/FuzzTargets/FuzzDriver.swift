#if FUZZING
import Foundation

/// libFuzzer's documented entry for programs that keep their own `main` (SwiftPM renames the
/// executable's `main`, so libFuzzer's cannot be used).
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

nonisolated(unsafe) private var currentTarget: ((UnsafeRawBufferPointer) -> Void)?

/// libFuzzer's runtime references this symbol even when the driver is started explicitly.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    currentTarget?(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

public enum FuzzDriver {
    public static func run(_ target: @escaping (UnsafeRawBufferPointer) -> Void) -> CInt {
        currentTarget = target
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            currentTarget?(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        }
    }
}
#endif
