// Package report parses the test reports actions write (JUnit XML, Cucumber JSON) into totals
// and the failed cases, bounded in what it reads and keeps. Collect reads an action's declared
// reports from its workspace: the Commands provider calls it once its commands ran, whatever
// their outcome, and the engine records the result on the action.
package report
