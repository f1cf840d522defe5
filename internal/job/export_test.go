package job

// CachePointer is cachePointer, for the tests of package job_test.
var CachePointer = cachePointer
