import FuzzTargets
#if FUZZING
import Foundation
#endif

/// Built normally, the binary replays the saved inputs named on its command line. Built by
/// Tests/Fuzz/run.sh with `-sanitize=fuzzer -DFUZZING`, it hands control to libFuzzer.
@main
struct FuzzPIDF {
    static func main() throws {
        #if FUZZING
        exit(FuzzDriver.run(FuzzTargets.pidf))
        #else
        try FuzzReplay.run(arguments: Array(CommandLine.arguments.dropFirst()), FuzzTargets.pidf)
        #endif
    }
}
